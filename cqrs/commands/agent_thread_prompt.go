package commands

import (
	"context"
	"fmt"

	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
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

var _ cqrs.Command[*thread.Response] = AgentThreadPrompt{}

// Execute returns the response it published, or nil when the outcome was
// an agent.thread.error.
func (c AgentThreadPrompt) Execute(ctx context.Context, cc cqrs.CommandContext, events *cqrs.Collector) (*thread.Response, error) {
	p := c.Prompt
	ans, ms, err := ask(ctx, c.Agent, Request{
		Provider: p.Provider, Model: p.Model, Prompt: p.Prompt,
		Project: p.Project, WorkingDir: p.WorkingDir, Domain: p.Domain, Tags: p.Tags,
	})
	if err != nil {
		if IsTransient(err) {
			return nil, fmt.Errorf("agent %s: %w", p.Provider, err)
		}
		code := errorCode(err)
		_, cerr := events.Add(thread.ErrorPayload{
			Provider: p.Provider, Model: p.Model, ErrorMessage: err.Error(), ErrorCode: &code,
		})
		return nil, cerr
	}
	model := p.Model
	if ans.Model != nil {
		model = ans.Model
	}
	promptID := cc.EventID.String()
	resp := thread.Response{
		Provider: p.Provider, PromptID: &promptID, Response: ans.Text, Model: model,
		TokensUsed: &ans.TokensUsed, DurationMS: &ms,
	}
	if _, err := events.Add(resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
