package envelope

import (
	"context"

	"github.com/google/uuid"
)

type causeKey struct{}

// WithCause returns a context that says: events published with it were
// caused by the event eventID. Handlers get such a context from the
// framework, so that what they publish is linked to what they handle.
func WithCause(ctx context.Context, eventID uuid.UUID) context.Context {
	return context.WithValue(ctx, causeKey{}, eventID)
}

// CauseFromContext returns the event that caused the work ctx belongs to.
func CauseFromContext(ctx context.Context) (uuid.UUID, bool) {
	id, ok := ctx.Value(causeKey{}).(uuid.UUID)
	return id, ok
}

type replayOfKey struct{}

// WithReplayOf returns a context that says: the event published with it
// replaces, in a replay, the event original of the first run. The
// correlation recorder writes it into the link as "replay_of".
func WithReplayOf(ctx context.Context, original uuid.UUID) context.Context {
	return context.WithValue(ctx, replayOfKey{}, original)
}

// ReplayOfFromContext returns the event that the one published with ctx
// replaces, if it is a replay's.
func ReplayOfFromContext(ctx context.Context) (uuid.UUID, bool) {
	id, ok := ctx.Value(replayOfKey{}).(uuid.UUID)
	return id, ok
}
