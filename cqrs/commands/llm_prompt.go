package commands

import (
	"context"

	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/llm"
)

// LLMPrompt executes llm.prompt as AgentThreadPrompt executes
// agent.thread.prompt: it asks its Agent and publishes one llm.response,
// or one llm.error when the Agent fails for good. Python's LLMPrompt is a
// plain model that nothing executes; the Go registry records llm.prompt as a
// command whose result is llm.response, and this is its behaviour.
type LLMPrompt struct {
	llm.Prompt
	// Agent answers the prompt. Optional; nil means EchoAgent{}.
	Agent Agent `json:"-"`
}

var _ cqrs.Command[*llm.Response] = LLMPrompt{}

// Execute returns the response it published, or nil when the outcome was
// an llm.error.
func (c LLMPrompt) Execute(ctx context.Context, cc cqrs.CommandContext, events *cqrs.Collector) (*llm.Response, error) {
	return answer[llm.Response, llm.ErrorPayload](ctx, c.Agent, Request(c.Prompt), cc, events)
}
