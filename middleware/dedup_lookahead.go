package middleware

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// SeenStarter is a DedupStore that can send a Seen lookup and be asked for
// its answer later, which Dedup.Prefetch needs. RedisDedupStore is one.
type SeenStarter interface {
	DedupStore
	// StartSeen sends the lookup of key and returns a function that waits
	// for its answer until ctx ends. The answer is the one Seen gives.
	// Dedup calls the function with an ended context to ask whether the
	// answer is in: it should then return the context's error, unwrapped
	// and without allocating, when it is not.
	StartSeen(ctx context.Context, key string) func(ctx context.Context) (bool, error)
}

var _ SeenStarter = (*RedisDedupStore)(nil)

// StartSeen queues the EXISTS on the auto-pipeliner without waiting for it.
// The function it returns, called with a context that has already ended,
// reports the answer if it is in and the context's own error if not: that
// is a question, not a failure of the store, and Dedup asks it of most
// messages, so it builds no error message.
func (s *RedisDedupStore) StartSeen(ctx context.Context, key string) func(context.Context) (bool, error) {
	if s.ap == nil {
		return func(ctx context.Context) (bool, error) {
			if err := ctx.Err(); err != nil {
				return false, err // nothing was sent, so no answer can be in
			}
			return s.Seen(ctx, key)
		}
	}
	full := s.prefix + key
	cmd := redis.NewIntCmd(ctx, "exists", full)
	f := s.ap.Submit(ctx, cmd)
	return func(ctx context.Context) (bool, error) {
		ended := ctx.Err()
		if err := f.WaitContext(ctx); err != nil {
			if ended != nil && err == ended {
				return false, err
			}
			return false, fmt.Errorf("cannot check dedup key %q: %w", full, err)
		}
		return cmd.Val() > 0, nil
	}
}

// lookahead is a message's context with the store lookup started before
// the message reached Dedup: one allocation where context.WithValue and a
// struct for the value took two. It keeps the parts of key, so that the
// middleware can take key without building it again.
type lookahead struct {
	context.Context
	d                        *Dedup // whose lookup: another's key names another service
	handler, eventID, replay string
	key                      string
	wait                     func(context.Context) (bool, error)
}

type lookaheadKey struct{}

func (l *lookahead) Value(key any) any {
	if key == (lookaheadKey{}) {
		return l
	}
	return l.Context.Value(key)
}

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
	replay := msg.Metadata.Get(envelope.MetaReplay)
	key := d.key(handler, msg.UUID, replay)
	if d.marks != nil && d.marks.has(key) {
		return // answered locally without a round trip
	}
	ctx := msg.Context()
	msg.SetContext(&lookahead{Context: ctx, d: d, handler: handler, eventID: msg.UUID, replay: replay, key: key,
		wait: starter.StartSeen(context.WithoutCancel(ctx), key)})
}

// prefetched returns the lookup d.Prefetch started for the message keyed by
// handler, eventID and replay, if it did.
func (d *Dedup) prefetched(ctx context.Context, handler, eventID, replay string) *lookahead {
	if l, ok := ctx.Value(lookaheadKey{}).(*lookahead); ok && l.d == d && l.handler == handler && l.eventID == eventID && l.replay == replay {
		return l
	}
	return nil
}
