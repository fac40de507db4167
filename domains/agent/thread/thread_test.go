package thread_test

import (
	"testing"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

func registry(t *testing.T) *domains.Registry {
	t.Helper()
	r := domains.NewRegistry()
	if err := thread.Register(r); err != nil {
		t.Fatalf("Register = %v", err)
	}
	return r
}

// The payload of the wire contract's example envelope (section 3).
const pythonPrompt = `{"provider": "anthropic", "model": "claude-sonnet-4", "prompt": "Analyze this codebase",
	"project": "bloodbank", "working_dir": null, "domain": null, "tags": ["analysis"]}`

func TestPrompt_pythonPayloadValidatesAndDecodes(t *testing.T) {
	if err := registry(t).Validate(thread.RoutingKeyPrompt, []byte(pythonPrompt)); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	got, err := domains.Decode[thread.Prompt]([]byte(pythonPrompt))
	if err != nil {
		t.Fatal(err)
	}
	if *got.Model != "claude-sonnet-4" || got.WorkingDir != nil || got.Domain != nil || len(got.Tags) != 1 {
		t.Errorf("Decode = %+v", got)
	}
}

func TestPrompt_everyProblemIsReported(t *testing.T) {
	err := registry(t).Validate(thread.RoutingKeyPrompt, []byte(`{"provider": "anthropic", "tags": "analysis"}`))
	if want := "payload.tags: expected array, got string; payload.prompt: required"; err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %q", err, want)
	}
}

func TestPrompt_tagsDefaultToEmpty(t *testing.T) {
	for _, payload := range []string{`{"provider": "p", "prompt": "x"}`, `{"provider": "p", "prompt": "x", "tags": null}`} {
		got, err := domains.Decode[thread.Prompt]([]byte(payload))
		if err != nil || got.Tags == nil || len(got.Tags) != 0 {
			t.Errorf("Decode(%s) = %#v, %v; want empty, non-nil tags", payload, got.Tags, err)
		}
	}
}

func TestPrompt_encodesNullsAndEmptyTags(t *testing.T) {
	b, err := envelope.MarshalPayload(thread.Prompt{Provider: "anthropic", Prompt: "hi"})
	want := `{"provider":"anthropic","model":null,"prompt":"hi","project":null,"working_dir":null,"domain":null,"tags":[]}`
	if err != nil || string(b) != want {
		t.Errorf("Marshal = %s, %v\nwant %s", b, err, want)
	}
}

func TestResponse_pythonPayloadValidatesAndDecodes(t *testing.T) {
	payload := `{"provider": "anthropic", "prompt_id": null, "response": "Echoing your prompt: hi", "model": null, "tokens_used": 42, "duration_ms": null}`
	if err := registry(t).Validate(thread.RoutingKeyResponse, []byte(payload)); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	got, err := domains.Decode[thread.Response]([]byte(payload))
	if err != nil || *got.TokensUsed != 42 || got.DurationMS != nil || got.PromptID != nil {
		t.Errorf("Decode = %+v, %v", got, err)
	}
}

func TestErrorPayload_defaults(t *testing.T) {
	r := registry(t)
	for _, payload := range []string{
		`{"provider": "anthropic", "error_message": "timeout"}`,
		`{"provider": "anthropic", "model": null, "error_message": "timeout", "error_code": null, "is_retryable": null, "retry_count": null}`,
	} {
		got, err := domains.Decode[thread.ErrorPayload]([]byte(payload))
		if err != nil || got.IsRetryable || got.RetryCount != 0 {
			t.Errorf("Decode(%s) = %+v, %v; want not retryable, 0 retries", payload, got, err)
		}
	}
	if err := r.Validate(thread.RoutingKeyError, []byte(`{"provider": "anthropic", "error_message": "timeout"}`)); err != nil {
		t.Errorf("Validate without defaulted fields = %v", err)
	}
}

func TestRegister_promptIsACommandAnsweredByResponse(t *testing.T) {
	e, err := registry(t).Lookup("AgentThreadPrompt")
	if err != nil || e.Kind() != domains.Command || e.Result() != thread.RoutingKeyResponse {
		t.Errorf("Lookup(AgentThreadPrompt) = %v, %v; want a command with result %s", e, err, thread.RoutingKeyResponse)
	}
}
