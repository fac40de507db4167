package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/middleware"
)

// These benchmarks measure what the middleware itself allocates per
// message, with stores that answer at once and allocate nothing, so that
// the numbers do not move with Redis.

// instantStore is a DedupStore and SeenStarter that never saw a key.
type instantStore struct{}

func (instantStore) Seen(context.Context, string) (bool, error)              { return false, nil }
func (instantStore) Mark(context.Context, string, time.Duration) error       { return nil }
func (instantStore) MarkMany(context.Context, []string, time.Duration) error { return nil }
func (instantStore) StartSeen(context.Context, string) func(context.Context) (bool, error) {
	return notSeen
}

func notSeen(context.Context) (bool, error) { return false, nil }

// BenchmarkDedup_middleware is Dedup's own cost per delivery: key, inflight
// bookkeeping, the store call's context, the mark's.
func BenchmarkDedup_middleware(b *testing.B) {
	// The wrapper hides instantStore's StartSeen, so Dedup asks Seen itself.
	benchDedupMemory(b, middleware.DedupConfig{Store: struct{ middleware.DedupStore }{instantStore{}}, Service: "bench"}, false)
}

// BenchmarkDedup_middlewarePrefetched is BenchmarkDedup_middleware with the
// lookup started by Prefetch and the marks written in the background.
func BenchmarkDedup_middlewarePrefetched(b *testing.B) {
	benchDedupMemory(b, middleware.DedupConfig{Store: instantStore{}, Service: "bench", MarkInBackground: true}, true)
}

func benchDedupMemory(b *testing.B, cfg middleware.DedupConfig, prefetch bool) {
	d, err := middleware.NewDedup(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h := d.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	msg := message.NewMessage("", nil)
	ctx := msg.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Fresh ids, as deliveries have: a repeated one would be a duplicate.
		msg.UUID = ids[i%len(ids)] + string(rune('a'+i/len(ids)%26))
		i++
		msg.SetContext(ctx)
		if prefetch {
			d.Prefetch(msg, "")
		}
		if _, err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = d.Flush(context.Background())
}

// BenchmarkRetry_success is Retry around a handler that succeeds at once,
// the path of nearly every message.
func BenchmarkRetry_success(b *testing.B) {
	r, err := middleware.NewRetry(middleware.RetryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	h := r.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		if middleware.AttemptFromCtx(msg.Context()) != 1 {
			return nil, errors.New("not the first attempt")
		}
		return nil, nil
	})
	msg := message.NewMessage(uuid.NewString(), nil)
	// A delivery's context can be cancelled, as the transport's is.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msg.SetContext(ctx)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuard_root is the guard on an event with no parents and no
// lineage headers: a root, which most events a service handles are.
func BenchmarkGuard_root(b *testing.B) {
	g := newGuard(b, middleware.GuardConfig{MaxDepth: 32, MaxRepeats: 8, MaxDescendants: 1 << 40, Counter: nopCounter{}})
	msg := guardMsg(b, "agent.thread.prompt", "agent-a")
	h := g.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	loopHandler(b, h, msg)
	b.StopTimer()
	_ = g.Flush(context.Background())
}

// BenchmarkTracing_off is the tracing middleware with no TracerProvider
// installed, as the binaries run by default (BB_TRACING=off): spans are
// no-ops, so no attributes should be built for them.
func BenchmarkTracing_off(b *testing.B) {
	tr := middleware.NewTracing(middleware.TracingConfig{})
	h := tr.Middleware(func(msg *message.Message) ([]*message.Message, error) { return nil, nil })
	msg := message.NewMessage(uuid.NewString(), nil)
	msg.Metadata.Set("bb_event_type", "agent.thread.prompt")
	msg.Metadata.Set("bb_correlation_ids", uuid.NewString())
	loopHandler(b, h, msg)
}

// loopHandler calls h with msg until the benchmark ends, with the same
// context each time, as a delivery comes with one.
func loopHandler(b *testing.B, h message.HandlerFunc, msg *message.Message) {
	ctx := msg.Context()
	b.ReportAllocs()
	for b.Loop() {
		msg.SetContext(ctx)
		if _, err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
}
