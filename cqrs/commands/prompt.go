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

// AgentThreadPrompt executes agent.thread.prompt: it asks its Agent and
// publishes the answer as one agent.thread.response (Python's
// AgentThreadPrompt.execute). The response carries the prompt's event id in
// correlation_ids (and in the deprecated prompt_id, which Python consumers
// still read), the prompt's agent_context, the model, tokens_used and
// duration_ms.
//
// When the Agent fails for good, the outcome is one agent.thread.error
// (is_retryable false, error_code from the *AgentError or "agent_error")
// and the prompt is acked: the error event is the answer. When it fails
// transiently (IsTransient), Execute returns the error: nothing is
// published and the prompt is redelivered under the service's retry policy.
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
// agent.thread.prompt: it asks its Agent and publishes one llm.response,
// or one llm.error when the Agent fails for good. Python's LLMPrompt is a
// plain model that nothing executes, so the catalogue records llm.prompt as
// a fact and Register leaves LLMPrompt out. A service that does run a model
// for llm.prompt registers it itself:
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

// answer executes a prompt command of any prompt domain: it asks agent
// (nil means EchoAgent{}) and collects one R, or one E when the agent fails
// for good. A transient failure is returned instead, so that nothing is
// published and the prompt is redelivered. R and E all have thread's fields,
// so one execution serves every domain and converts its outcome last.
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
