package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/llm"
)

// response and failure are the Go types a prompt command publishes its
// outcome as, one of each per prompt domain. They all have thread's fields,
// so one execution serves every domain and converts its outcome last.
type response interface{ thread.Response | llm.Response }

type failure interface {
	thread.ErrorPayload | llm.ErrorPayload
}

// answer executes a prompt command of any prompt domain: it asks agent
// (nil means EchoAgent{}) and collects one R, or one E when the agent fails
// for good. A transient failure is returned instead, so that nothing is
// published and the prompt is redelivered.
func answer[R response, E failure](ctx context.Context, agent Agent, req Request, cc cqrs.CommandContext, events *cqrs.Collector) (*R, error) {
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
		code := errorCode(err)
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
