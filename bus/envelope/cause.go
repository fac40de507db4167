package envelope

import (
	"context"

	"github.com/google/uuid"
)

type causeKey struct{}

// causeCtx carries a cause in one allocation, where context.WithValue
// would box the id as well: every handled message gets one.
type causeCtx struct {
	context.Context
	id uuid.UUID
}

func (c *causeCtx) Value(key any) any {
	if key == (causeKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// WithCause returns a context that says: events published with it were
// caused by the event eventID. Handlers get such a context from the
// framework, so that what they publish is linked to what they handle.
func WithCause(ctx context.Context, eventID uuid.UUID) context.Context {
	return &causeCtx{Context: ctx, id: eventID}
}

// CauseFromContext returns the event that caused the work ctx belongs to.
func CauseFromContext(ctx context.Context) (uuid.UUID, bool) {
	if c, ok := ctx.Value(causeKey{}).(*causeCtx); ok {
		return c.id, true
	}
	return uuid.Nil, false
}

type replayOfKey struct{}

// WithReplayOf marks what is published with ctx as the replay of original;
// the correlation recorder writes it into the link as "replay_of".
func WithReplayOf(ctx context.Context, original uuid.UUID) context.Context {
	return context.WithValue(ctx, replayOfKey{}, original)
}

// ReplayOfFromContext returns what WithReplayOf set.
func ReplayOfFromContext(ctx context.Context) (uuid.UUID, bool) {
	id, ok := ctx.Value(replayOfKey{}).(uuid.UUID)
	return id, ok
}
