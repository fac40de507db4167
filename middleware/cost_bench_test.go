package middleware_test

import (
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/middleware"
)

// BenchmarkDefaultLinkCost is what every published response pays to report
// its cost; other event types stop at a map lookup (the "fact" case).
func BenchmarkDefaultLinkCost(b *testing.B) {
	tokens, ms := 1200, 3400
	resp := relEventMsg(b, thread.RoutingKeyResponse, thread.Response{Provider: "anthropic", Response: strings.Repeat("an answer ", 200), TokensUsed: &tokens, DurationMS: &ms})
	fact := relEventMsg(b, thread.RoutingKeyPrompt, thread.Prompt{Provider: "anthropic", Prompt: "p"})
	for _, bc := range []struct {
		name string
		msg  *message.Message
	}{{"response", resp}, {"fact", fact}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				middleware.DefaultLinkCost(middleware.LinkMetadataParams{Message: bc.msg})
			}
		})
	}
}

// BenchmarkTokenBudget is the guard's cost per command when the command
// names its root (one HGET on the embedded Redis).
func BenchmarkTokenBudget(b *testing.B) {
	s := newCostStore(b)
	guard, err := middleware.NewTokenBudget(middleware.TokenBudgetConfig{Store: s, MaxRootTokens: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	h := guard.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	msg := relEventMsg(b, thread.RoutingKeyPrompt, thread.Prompt{Provider: "anthropic", Prompt: "p"})
	msg.Metadata.Set(middleware.MetaRoot, uuid.NewString())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
}
