package domains

import (
	"errors"
	"strings"
)

// ErrUnknownEventType is wrapped when nothing is registered under a routing
// key or name. It is not a validation failure, so each caller picks its own
// policy (see the package doc).
var ErrUnknownEventType = errors.New("unknown event type")

// ErrInvalidPayload is matched (errors.Is) by every *ValidationError.
var ErrInvalidPayload = errors.New("invalid payload")

// ErrAlreadyRegistered is returned by Register when a routing key, type or
// name is already taken by a different registration.
var ErrAlreadyRegistered = errors.New("already registered")

// ErrInvalidSpec is returned by Register for a malformed Spec, an
// unsupported payload type, or an example that does not validate.
var ErrInvalidSpec = errors.New("invalid event spec")

// Problem is one reason a payload is invalid.
type Problem struct {
	// Path locates the offending value from the envelope's point of view:
	// "payload", "payload.tags", "payload.sentences[3].ai_filters.sentiment".
	Path string
	// Message says what is wrong: "required", "expected array, got string".
	Message string
}

// String is "path: message".
func (p Problem) String() string { return p.Path + ": " + p.Message }

// ValidationError lists every problem found in a payload, not only the
// first, so that a producer fixes them all in one round trip.
type ValidationError struct {
	Problems []Problem
}

// Error joins the problems: "payload.tags: expected array, got string; payload.prompt: required".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// Is reports whether target is ErrInvalidPayload.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidPayload }
