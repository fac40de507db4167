package envelope

import (
	"errors"
	"fmt"
	"strings"
)

// MalformedError says why a body is not a Bloodbank v1 envelope.
type MalformedError struct {
	// Reason is a sentence a person can act on, naming the field at fault.
	Reason string
}

func (e *MalformedError) Error() string { return "malformed envelope: " + e.Reason }

// InvalidError lists everything wrong with an envelope built in Go.
type InvalidError struct {
	Problems []string
}

func (e *InvalidError) Error() string { return "invalid envelope: " + strings.Join(e.Problems, "; ") }

// PermanentError marks a failure that retrying cannot fix: a malformed or
// invalid message, an unknown event type, or whatever a handler decides. The
// reliability middleware parks such messages at once instead of retrying.
type PermanentError struct {
	// Kind classifies the failure for operators: one of the Kind* constants.
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
