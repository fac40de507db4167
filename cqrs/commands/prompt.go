package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/llm"
)

// AgentThreadPrompt executes agent.thread.prompt as Python's
// AgentThreadPrompt.execute does: it asks its Agent and publishes one
// agent.thread.response, carrying the prompt's id also in the deprecated
// prompt_id that Python consumers still read, or one agent.thread.error
// (error_code from the *AgentError, else "agent_error"); see the package doc.
type AgentThreadPrompt struct {
	thread.Prompt
	// Agent answers the prompt. Optional; nil means EchoAgent{}.
	Agent Agent `json:"-"`
}

// Execute returns the response it published, or nil when the outcome was
// an agent.thread.error.
func (c AgentThreadPrompt) Execute(ctx context.Context, cc cqrs.CommandContext, events *cqrs.Collector) (*thread.Response, error) {
	return answer[thread.Response, thread.ErrorPayload](ctx, c.Agent, Request(c.Prompt), cc, events)
}

// LLMPrompt executes llm.prompt as AgentThreadPrompt executes
// agent.thread.prompt, answering llm.response or llm.error. Python executes
// no llm.prompt, so the catalogue records it as a fact and Register leaves
// LLMPrompt out; a service that runs a model for it registers it itself:
//
//	reg.ExecuteAsCommand(llm.RoutingKeyPrompt, llm.RoutingKeyResponse)
//	cqrs.Register(processor, commands.LLMPrompt{Agent: myModel})
type LLMPrompt struct {
	llm.Prompt
	// Agent answers the prompt. Optional; nil means EchoAgent{}.
	Agent Agent `json:"-"`
}

// Execute returns the response it published, or nil when the outcome was
// an llm.error.
func (c LLMPrompt) Execute(ctx context.Context, cc cqrs.CommandContext, events *cqrs.Collector) (*llm.Response, error) {
	return answer[llm.Response, llm.ErrorPayload](ctx, c.Agent, Request(c.Prompt), cc, events)
}

// answer executes a prompt of any prompt domain. R and E all have thread's
// fields, so one execution serves every domain and converts its outcome last.
func answer[R thread.Response | llm.Response, E thread.ErrorPayload | llm.ErrorPayload](
	ctx context.Context, agent Agent, req Request, cc cqrs.CommandContext, events *cqrs.Collector,
) (*R, error) {
	if agent == nil {
		agent = EchoAgent{}
	}
	start := time.Now()
	ans, err := agent.Respond(ctx, req)
	ms := int(time.Since(start).Milliseconds())
	if err != nil {
		if IsTransient(err) {
			return nil, fmt.Errorf("cannot ask %s: %w", req.Provider, err)
		}
		code := "agent_error"
		if ae, ok := errors.AsType[*AgentError](err); ok && ae.Code != "" {
			code = ae.Code
		}
		_, cerr := events.Add(E(thread.ErrorPayload{
			Provider: req.Provider, Model: req.Model, ErrorMessage: err.Error(), ErrorCode: &code,
		}))
		return nil, cerr
	}
	model := req.Model
	if ans.Model != nil {
		model = ans.Model
	}
	promptID := cc.EventID.String()
	resp := R(thread.Response{
		//lint:ignore SA1019 Python responses carry prompt_id, so Go ones do too
		Provider: req.Provider, PromptID: &promptID, Response: ans.Text, Model: model,
		TokensUsed: &ans.TokensUsed, DurationMS: &ms,
	})
	if _, err := events.Add(resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
