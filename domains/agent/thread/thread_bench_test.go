package thread_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// benchPrompt is an agent.thread.prompt payload of about 850 bytes, the
// payload of the 1 KiB envelopes cmd/bench sends.
func benchPrompt(b *testing.B) []byte {
	model, project := "claude-sonnet-4", "bloodbank"
	p := thread.Prompt{Provider: "anthropic", Model: &model, Project: &project, Tags: []string{"bench"},
		Prompt: "Analyze this codebase." + strings.Repeat(" Explain the module layout, the codec and the retry policy.", 13)}
	raw, err := json.Marshal(p)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkPrompt_Unmarshal is encoding/json's json.Unmarshal into a
// Prompt, without defaults, for comparison with BenchmarkPrompt_DecodePayload.
func BenchmarkPrompt_Unmarshal(b *testing.B) {
	raw := benchPrompt(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var p thread.Prompt
		if err := json.Unmarshal(raw, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPrompt_DecodePayload is the same decode as a typed handler does
// it: envelope.DecodePayload, defaults applied.
func BenchmarkPrompt_DecodePayload(b *testing.B) {
	env := envelope.Envelope{EventType: thread.RoutingKeyPrompt, Payload: benchPrompt(b)}
	b.SetBytes(int64(len(env.Payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.DecodePayload[thread.Prompt](env); err != nil {
			b.Fatal(err)
		}
	}
}
