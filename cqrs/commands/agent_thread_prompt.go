package commands

import (
	"context"

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
	return answer[thread.Response, thread.ErrorPayload](ctx, c.Agent, Request(c.Prompt), cc, events)
}
