package middleware

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

// Validator checks a payload against the schema of its event type.
// *domains.Registry implements it. Validate returns an error wrapping
// domains.ErrUnknownEventType when nothing is registered under routingKey,
// and any other error for an invalid payload.
type Validator interface {
	Validate(routingKey string, payload []byte) error
}

// Normalizer is a Validator that also reads payloads as Python's Pydantic
// models do in their lax mode (domains.Registry.Normalize).
type Normalizer interface {
	Normalize(routingKey string, payload []byte) ([]byte, error)
}

var (
	_ Validator  = (*domains.Registry)(nil)
	_ Normalizer = (*domains.Registry)(nil)
)

// UnknownTypePolicy says what Validation does with an event whose type the
// Validator does not know.
type UnknownTypePolicy int

const (
	// UnknownPassThrough hands an event of an unknown type to the handler
	// unvalidated, the default: a consumer bound to "#" must not reject a
	// domain a Python producer added before this service's catalogue knew it.
	UnknownPassThrough UnknownTypePolicy = iota
	// UnknownReject fails an event of an unknown type with a
	// *envelope.PermanentError of kind envelope.KindUnknownType.
	UnknownReject
)

// String names the policy for logs and errors.
func (p UnknownTypePolicy) String() string {
	switch p {
	case UnknownPassThrough:
		return "pass_through"
	case UnknownReject:
		return "reject"
	default:
		return fmt.Sprintf("UnknownTypePolicy(%d)", int(p))
	}
}

// ValidationConfig configures NewValidation.
type ValidationConfig struct {
	// Validator checks payloads. Required; usually the *domains.Registry
	// from catalog.New, plus the service's own domains.
	Validator Validator
	// UnknownTypes says what to do with an event type the Validator does
	// not know. Optional; default UnknownPassThrough.
	UnknownTypes UnknownTypePolicy
	// StrictTypes refuses values of the wrong JSON type (BB_STRICT_TYPES).
	// Optional; by default a Normalizer converts what Python's consumers
	// convert ("900" for an integer), and the handler gets the result.
	StrictTypes bool
	// Logger receives a debug line per message rejected or passed
	// unvalidated. Optional; default logs nothing.
	Logger *slog.Logger
}

// Validate reports every problem of the configuration at once.
func (c ValidationConfig) Validate() error {
	var p problems
	p.add(c.Validator == nil, "Validator is required (use the *domains.Registry from catalog.New)")
	p.add(c.UnknownTypes != UnknownPassThrough && c.UnknownTypes != UnknownReject,
		"UnknownTypes %s is not a policy: use UnknownPassThrough or UnknownReject", c.UnknownTypes)
	return p.err("ValidationConfig")
}

// ValidationStats counts what a Validation decided since it was built, each
// message under exactly one outcome.
type ValidationStats struct {
	Valid     uint64 // reached the handler validated
	Invalid   uint64 // failed with kind envelope.KindInvalid
	Malformed uint64 // failed with kind envelope.KindMalformed
	Unknown   uint64 // of a type the Validator does not know, passed or failed per UnknownTypes
}

// Validation is the validation middleware: install its Middleware method
// inside Retry and Poison. Build it with NewValidation. It is safe for
// concurrent use.
type Validation struct {
	cfg ValidationConfig

	valid, invalid, malformed, unknown atomic.Uint64
}

// NewValidation returns the validation middleware. A message the codec
// marked malformed fails with a *envelope.PermanentError of kind
// envelope.KindMalformed; a payload the Validator rejects, of kind
// envelope.KindInvalid wrapping the Validator's error (errors.As finds the
// *domains.ValidationError). A Validator cannot fail "temporarily".
func NewValidation(cfg ValidationConfig) (*Validation, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Logger = cmp.Or(cfg.Logger, discardLogger)
	return &Validation{cfg: cfg}, nil
}

// Middleware implements message.HandlerMiddleware.
func (v *Validation) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if err := v.check(msg); err != nil {
			return nil, err
		}
		return h(msg)
	}
}

func (v *Validation) check(msg *message.Message) error {
	if reason, bad := envelope.Malformed(msg); bad {
		v.malformed.Add(1)
		v.cfg.Logger.Debug("malformed message rejected",
			slog.String("event_id", msg.UUID), slog.String("reason", reason))
		return &envelope.PermanentError{Kind: envelope.KindMalformed, Err: &envelope.MalformedError{Reason: reason}}
	}
	eventType := envelope.EventType(msg)
	var err error
	if n, ok := v.cfg.Validator.(Normalizer); ok && !v.cfg.StrictTypes {
		var payload []byte
		if payload, err = n.Normalize(eventType, msg.Payload); err == nil {
			msg.Payload = payload
		}
	} else {
		err = v.cfg.Validator.Validate(eventType, msg.Payload)
	}
	switch {
	case err == nil:
		v.valid.Add(1)
		return nil
	case errors.Is(err, domains.ErrUnknownEventType):
		v.unknown.Add(1)
		if v.cfg.UnknownTypes == UnknownReject {
			v.cfg.Logger.Debug("unknown event type rejected",
				slog.String("event_id", msg.UUID), slog.String("event_type", eventType))
			return &envelope.PermanentError{Kind: envelope.KindUnknownType, Err: err}
		}
		v.cfg.Logger.Debug("unknown event type passed through unvalidated",
			slog.String("event_id", msg.UUID), slog.String("event_type", eventType))
		return nil
	default:
		v.invalid.Add(1)
		v.cfg.Logger.Debug("invalid payload rejected",
			slog.String("event_id", msg.UUID), slog.String("event_type", eventType), slog.String("error", err.Error()))
		return &envelope.PermanentError{Kind: envelope.KindInvalid, Err: err}
	}
}

// Stats returns the counters, read one by one while messages may be validated.
func (v *Validation) Stats() ValidationStats {
	return ValidationStats{Valid: v.valid.Load(), Invalid: v.invalid.Load(), Malformed: v.malformed.Load(), Unknown: v.unknown.Load()}
}
