package bus

import (
	"context"
	"errors"
	"fmt"

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

// PermanentError marks a failure that retrying cannot fix: a malformed or
// invalid message, an unknown event type, or whatever a handler decides. The
// reliability middleware parks such messages at once instead of retrying.
type PermanentError struct {
	// Kind classifies the failure for operators: "malformed", "invalid",
	// "unknown_type" or "handler".
	Kind string
	Err  error
}

// Failure kinds of a PermanentError.
const (
	KindMalformed   = "malformed"
	KindInvalid     = "invalid"
	KindUnknownType = "unknown_type"
	KindHandler     = "handler"
)

func (e *PermanentError) Error() string {
	return fmt.Sprintf("permanent %s failure: %v", e.Kind, e.Err)
}

// Unwrap returns the underlying error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a handler's PermanentError: the message will not
// be retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Kind: KindHandler, Err: err}
}

// IsPermanent reports whether err, or any error it wraps, is permanent.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}
