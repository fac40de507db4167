package commands_test

//lint:file-ignore SA1019 prompt_id is deprecated, yet responses still carry it as Python ones do

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/cqrs/commands"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/domains/llm"
)

type failingAgent struct{ err error }

func (a failingAgent) Respond(context.Context, commands.Request) (commands.Answer, error) {
	return commands.Answer{}, a.err
}

func execute(t *testing.T, agent commands.Agent, prompt string) (*thread.Response, []envelope.Envelope, cqrs.CommandContext, error) {
	t.Helper()
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	cc := cqrs.CommandContext{EventID: uuid.New(), EventType: thread.RoutingKeyPrompt, SourceApp: "test", Timestamp: time.Now()}
	col, err := cqrs.NewCollector(cc, cqrs.CollectorConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	cmd := commands.AgentThreadPrompt{Prompt: thread.Prompt{Provider: "anthropic", Model: new("claude-sonnet-4"), Prompt: prompt}, Agent: agent}
	resp, err := cmd.Execute(context.Background(), cc, col)
	return resp, col.Events(), cc, err
}

// As the Python test_command_execution: one command, one response event.
func TestAgentThreadPrompt_echoesThePrompt(t *testing.T) {
	resp, events, cc, err := execute(t, nil, "Test prompt")
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].EventType != thread.RoutingKeyResponse {
		t.Fatalf("events = %v, want one agent.thread.response", events)
	}
	if resp.Response != "Echoing your prompt: Test prompt" || *resp.TokensUsed != 7 || resp.DurationMS == nil || *resp.Model != "claude-sonnet-4" {
		t.Errorf("response = %+v", resp)
	}
	if *resp.PromptID != cc.EventID.String() || events[0].EventID != cqrs.SideEffectID(thread.RoutingKeyResponse, cc.EventID, 0) {
		t.Errorf("response not tied to the prompt %s: prompt_id %s, id %s", cc.EventID, *resp.PromptID, events[0].EventID)
	}
	again, _, _, _ := execute(t, commands.EchoAgent{}, "Test prompt")
	if again.Response != resp.Response || *again.TokensUsed != *resp.TokensUsed {
		t.Error("the echo is not deterministic")
	}
}

func TestAgentThreadPrompt_finalFailureIsTheErrorEvent(t *testing.T) {
	resp, events, _, err := execute(t, failingAgent{&commands.AgentError{Code: "invalid_request", Err: errors.New("prompt too long")}}, "x")
	if err != nil || resp != nil {
		t.Fatalf("Execute = %v, %v; want no response and no error", resp, err)
	}
	if len(events) != 1 || events[0].EventType != thread.RoutingKeyError {
		t.Fatalf("events = %v, want one agent.thread.error", events)
	}
	e, err := envelope.DecodePayload[thread.ErrorPayload](events[0])
	if err != nil {
		t.Fatal(err)
	}
	if e.ErrorMessage != "invalid_request: prompt too long" || *e.ErrorCode != "invalid_request" || e.IsRetryable || *e.Model != "claude-sonnet-4" {
		t.Errorf("error payload = %+v", e)
	}
}

func TestAgentThreadPrompt_transientFailureFailsTheCommand(t *testing.T) {
	_, events, _, err := execute(t, failingAgent{&commands.AgentError{Retryable: true, Err: errors.New("rate limited")}}, "x")
	if err == nil || envelope.IsPermanent(err) {
		t.Errorf("err = %v, want a transient error", err)
	}
	if len(events) != 0 {
		t.Errorf("collected %v, want nothing", events)
	}
}

func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("refused"), false},
		{&commands.AgentError{Err: errors.New("bad")}, false},
		{&commands.AgentError{Retryable: true, Err: errors.New("429")}, true},
		{fmt.Errorf("calling: %w", &commands.AgentError{Retryable: true, Err: errors.New("429")}), true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("call: %w", context.Canceled), true},
	} {
		if got := commands.IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestEchoAgent_delayEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := commands.EchoAgent{Delay: time.Hour}.Respond(ctx, commands.Request{Prompt: "x"})
	if !commands.IsTransient(err) {
		t.Errorf("err = %v, want a transient context error", err)
	}
}

// llm.prompt shares agent.thread.prompt's execution; its outcomes are
// published under the llm routing keys.
func TestLLMPrompt_answersInItsOwnDomain(t *testing.T) {
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		agent commands.Agent
		want  string
	}{
		{nil, llm.RoutingKeyResponse},
		{failingAgent{errors.New("refused")}, llm.RoutingKeyError},
	} {
		cc := cqrs.CommandContext{EventID: uuid.New(), EventType: llm.RoutingKeyPrompt}
		col, err := cqrs.NewCollector(cc, cqrs.CollectorConfig{Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := commands.LLMPrompt{Prompt: llm.Prompt{Provider: "openai", Prompt: "hi"}, Agent: tc.agent}.Execute(context.Background(), cc, col)
		if err != nil || len(col.Events()) != 1 || col.Events()[0].EventType != tc.want {
			t.Fatalf("Execute = %v, %v; events %v; want one %s", resp, err, col.Events(), tc.want)
		}
		if tc.want == llm.RoutingKeyResponse && resp.Response != "Echoing your prompt: hi" {
			t.Errorf("response = %+v", resp)
		}
	}
}
