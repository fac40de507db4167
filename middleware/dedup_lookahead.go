package middleware

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// SeenStarter is a DedupStore that can send a Seen lookup and be asked for
// its answer later, which Dedup.Prefetch needs. RedisDedupStore is one.
type SeenStarter interface {
	DedupStore
	// StartSeen sends the lookup of key and returns a function that waits
	// for its answer until ctx ends. The answer is the one Seen gives.
	StartSeen(ctx context.Context, key string) func(ctx context.Context) (bool, error)
}

var _ SeenStarter = (*RedisDedupStore)(nil)

// StartSeen queues the EXISTS on the auto-pipeliner without waiting for it.
func (s *RedisDedupStore) StartSeen(ctx context.Context, key string) func(context.Context) (bool, error) {
	if s.ap == nil {
		return func(ctx context.Context) (bool, error) { return s.Seen(ctx, key) }
	}
	cmd := redis.NewIntCmd(ctx, "exists", s.prefix+key)
	f := s.ap.Submit(ctx, cmd)
	return func(ctx context.Context) (bool, error) {
		if err := f.WaitContext(ctx); err != nil {
			return false, fmt.Errorf("cannot check dedup key %q: %w", s.prefix+key, err)
		}
		return cmd.Val() > 0, nil
	}
}

// lookahead is a store lookup started before the message reached Dedup.
type lookahead struct {
	key  string
	wait func(context.Context) (bool, error)
}

type lookaheadKey struct{}

// answered is an ended context: waiting on it for a lookup's answer returns
// the answer if it is in, and context.Canceled at once if not.
var answered = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Prefetch starts the store lookup of a message for handler, so that its
// round trip runs while the message travels to Dedup.Middleware, which
// then waits for the answer instead of asking. Install it where the
// transport hands messages over: bus.Service.Prepare (reliability.Use does)
// or transport.SubscriberConfig.Prepare. It sends the same lookup the
// middleware would, for the same key, so no duplicate gets through that
// the middleware alone would have stopped; it does nothing when the store
// is not a SeenStarter.
func (d *Dedup) Prefetch(msg *message.Message, handler string) {
	starter, ok := d.cfg.Store.(SeenStarter)
	if !ok || msg.UUID == "" {
		return
	}
	key := d.messageKey(handler, msg)
	if d.marks != nil && d.marks.has(key) {
		return // answered locally without a round trip
	}
	ctx := msg.Context()
	msg.SetContext(context.WithValue(ctx, lookaheadKey{}, &lookahead{key: key, wait: starter.StartSeen(context.WithoutCancel(ctx), key)}))
}

// prefetched returns the lookup Prefetch started for key, if it did.
func prefetched(ctx context.Context, key string) func(context.Context) (bool, error) {
	if l, ok := ctx.Value(lookaheadKey{}).(*lookahead); ok && l.key == key {
		return l.wait
	}
	return nil
}
