package llm_test

import (
	"errors"
	"testing"

	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/domains/llm"
)

// llm and agent/thread payloads share their fields but not their types, so a
// Go value always names its own routing key.
func TestTypesAreDistinctFromAgentThread(t *testing.T) {
	r, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		value any
		want  string
	}{
		{llm.Prompt{Provider: "openai", Prompt: "hi"}, llm.RoutingKeyPrompt},
		{thread.Prompt{Provider: "openai", Prompt: "hi"}, thread.RoutingKeyPrompt},
		{llm.ErrorPayload{}, llm.RoutingKeyError},
		{thread.ErrorPayload{}, thread.RoutingKeyError},
	}
	for _, tt := range tests {
		if got, err := r.RoutingKeyFor(tt.value); err != nil || got != tt.want {
			t.Errorf("RoutingKeyFor(%T) = %q, %v; want %q", tt.value, got, err, tt.want)
		}
	}
	// A fact, as in Python, until a service executes it.
	if e, _ := r.LookupKey(llm.RoutingKeyPrompt); e.Kind() != domains.Fact || e.Result() != "" {
		t.Errorf("llm.prompt: kind %s result %q, want a fact", e.Kind(), e.Result())
	}
	if err := r.ExecuteAsCommand(llm.RoutingKeyPrompt, llm.RoutingKeyResponse); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{llm.RoutingKeyPrompt, "LLMPrompt", "llm.Prompt"} {
		if e, err := r.Lookup(name); err != nil || e.Kind() != domains.Command || e.Result() != llm.RoutingKeyResponse {
			t.Errorf("Lookup(%s) after ExecuteAsCommand = %v, %v; want a command answered by %s", name, e, err, llm.RoutingKeyResponse)
		}
	}
	if e, err := r.RoutingKeyFor(llm.Prompt{}); err != nil || e != llm.RoutingKeyPrompt {
		t.Errorf("RoutingKeyFor(llm.Prompt) = %q, %v", e, err)
	}
	if err := r.ExecuteAsCommand("llm.unknown", llm.RoutingKeyResponse); !errors.Is(err, domains.ErrUnknownEventType) {
		t.Errorf("ExecuteAsCommand of an unknown key = %v, want ErrUnknownEventType", err)
	}
}

func TestPrompt_tagsDefaultToEmpty(t *testing.T) {
	got, err := domains.Decode[llm.Prompt]([]byte(`{"provider": "openai", "model": null, "prompt": "hi", "tags": null}`))
	if err != nil || got.Tags == nil || got.Model != nil {
		t.Errorf("Decode = %+v, %v; want empty tags and a nil model", got, err)
	}
}
