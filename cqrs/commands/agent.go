package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// Request is the prompt an Agent answers, with the fields that
// agent.thread.prompt and llm.prompt share (declared by thread.Prompt).
type Request thread.Prompt

// Answer is an Agent's reply.
type Answer struct {
	// Text is the response. Required.
	Text string
	// Model is the model that answered; nil keeps the prompt's model.
	Model *string
	// TokensUsed is what the answer cost.
	TokensUsed int
}

// Agent answers prompts: the model behind the prompt commands. It is called
// concurrently, and its error decides the outcome (see the package doc).
type Agent interface {
	Respond(ctx context.Context, req Request) (Answer, error)
}

// EchoAgent is the reference agent of the wire contract (section 6): it calls
// no model and answers "Echoing your prompt: <prompt>", with TokensUsed the
// number of words of prompt and answer. Same prompt, same answer.
type EchoAgent struct {
	// Delay simulates a model's latency before each answer. Optional;
	// default none. A context that ends first makes the answer a transient
	// error.
	Delay time.Duration
}

// Respond echoes req.Prompt.
func (a EchoAgent) Respond(ctx context.Context, req Request) (Answer, error) {
	if a.Delay > 0 {
		t := time.NewTimer(a.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return Answer{}, ctx.Err()
		}
	}
	text := "Echoing your prompt: " + req.Prompt
	return Answer{Text: text, TokensUsed: words(req.Prompt) + words(text)}, nil
}

// words is len(strings.Fields(s)) without building the slice: the echo
// runs on every command the processor handles, and a prompt of a thousand
// words made it the largest allocation on that path.
func words(s string) int {
	n := 0
	for range strings.FieldsSeq(s) {
		n++
	}
	return n
}

// AgentError is a failure an Agent reports with what the error event needs.
type AgentError struct {
	// Code is the error_code of the error event, e.g. "rate_limit_error".
	// Optional; default "agent_error".
	Code string
	// Retryable marks a failure that asking again may fix (a rate limit,
	// a timeout): the command fails and the prompt is redelivered.
	Retryable bool
	// Err is the underlying error. Required.
	Err error
}

func (e *AgentError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	}
	return fmt.Sprint(e.Err)
}

// Unwrap returns the underlying error.
func (e *AgentError) Unwrap() error { return e.Err }

// IsTransient reports whether an Agent's error is worth asking again for:
// an *AgentError with Retryable set, or the end of the context, which says
// nothing about the prompt.
func IsTransient(err error) bool {
	if ae, ok := errors.AsType[*AgentError](err); ok {
		return ae.Retryable
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
