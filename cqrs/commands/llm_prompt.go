package commands

import (
	"context"
	"fmt"

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
	p := c.Prompt
	ans, ms, err := ask(ctx, c.Agent, Request{
		Provider: p.Provider, Model: p.Model, Prompt: p.Prompt,
		Project: p.Project, WorkingDir: p.WorkingDir, Domain: p.Domain, Tags: p.Tags,
	})
	if err != nil {
		if IsTransient(err) {
			return nil, fmt.Errorf("model %s: %w", p.Provider, err)
		}
		code := errorCode(err)
		_, cerr := events.Add(llm.ErrorPayload{
			Provider: p.Provider, Model: p.Model, ErrorMessage: err.Error(), ErrorCode: &code,
		})
		return nil, cerr
	}
	model := p.Model
	if ans.Model != nil {
		model = ans.Model
	}
	promptID := cc.EventID.String()
	resp := llm.Response{
		Provider: p.Provider, PromptID: &promptID, Response: ans.Text, Model: model,
		TokensUsed: &ans.TokensUsed, DurationMS: &ms,
	}
	if _, err := events.Add(resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
