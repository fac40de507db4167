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
