package catalog_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// BenchmarkRegistry_Validate_prompt validates an agent.thread.prompt
// payload of about 850 bytes against the catalogue, as the validation
// middleware does for every delivery of the common 1 KiB event.
func BenchmarkRegistry_Validate_prompt(b *testing.B) {
	reg, err := catalog.New()
	if err != nil {
		b.Fatal(err)
	}
	model := "claude-sonnet-4"
	raw, err := json.Marshal(thread.Prompt{Provider: "anthropic", Model: &model, Tags: []string{"bench"},
		Prompt: strings.Repeat("Explain the module layout, the codec and the retry policy. ", 13)})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if err := reg.Validate(thread.RoutingKeyPrompt, raw); err != nil {
			b.Fatal(err)
		}
	}
}
