package middleware_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/middleware"
)

// nopCounter is a DescendantCounter that answers at once, so the benchmark
// measures the guard, not a store.
type nopCounter struct{}

func (nopCounter) AddDescendants(_ context.Context, add map[uuid.UUID]int64) (map[uuid.UUID]int64, error) {
	return add, nil
}

// BenchmarkGuard_headers is the guard's hot path: an event that carries its
// depth, root and repeats headers (everything Go publishes), with every rule
// on. No Redis round trip is on this path; the descendant count goes to the
// counter in the background.
func BenchmarkGuard_headers(b *testing.B) {
	g := newGuard(b, middleware.GuardConfig{MaxDepth: 32, MaxRepeats: 8, MaxDescendants: 1 << 40, Counter: nopCounter{}})
	msg := guardMsg(b, "agent.thread.prompt", "agent-a", uuid.New())
	envelope.SetLineage(msg, envelope.Lineage{Depth: 6, Root: uuid.New(),
		Repeats: map[string]int{"agent.thread.prompt|agent-a": 3, "agent.thread.response|agent-b": 3}})
	h := g.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	loopHandler(b, h, msg)
	b.StopTimer()
	_ = g.Flush(context.Background())
}
