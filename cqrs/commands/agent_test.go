package commands_test

import (
	"context"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/cqrs/commands"
)

// The token count is the words of prompt and answer, as strings.Fields
// splits them (any Unicode space, runs of it, at either end).
func TestEchoAgent_countsWordsAsFieldsDoes(t *testing.T) {
	for _, prompt := range []string{"", "   ", "one", " two  words ", "tab\tand\nnewline", "no\u00a0break\u2003em space", "héllo wörld ✓"} {
		a, err := commands.EchoAgent{}.Respond(context.Background(), commands.Request{Prompt: prompt})
		if err != nil {
			t.Fatal(err)
		}
		want := len(strings.Fields(prompt)) + len(strings.Fields(a.Text))
		if a.TokensUsed != want {
			t.Errorf("prompt %q: TokensUsed %d, want %d", prompt, a.TokensUsed, want)
		}
	}
}

// The echo is on the path of every command the processor handles: its
// only allocation is the answer's text.
func TestEchoAgent_allocatesOnlyTheAnswer(t *testing.T) {
	req := commands.Request{Prompt: strings.Repeat("word ", 200)}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := (commands.EchoAgent{}).Respond(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("Respond allocates %.0f times per call, want 1 (the text)", allocs)
	}
}
