package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

// Validator checks a payload against the schema of the event type it
// travels under. *domains.Registry implements it. Validate returns nil for a
// valid payload, an error wrapping domains.ErrUnknownEventType when nothing
// is registered under routingKey, and any other error for an invalid
// payload (the registry returns a *domains.ValidationError naming every
// problem by its JSON path).
type Validator interface {
	Validate(routingKey string, payload []byte) error
}

var _ Validator = (*domains.Registry)(nil)

// UnknownTypePolicy says what Validation does with an event whose type the
// Validator does not know.
type UnknownTypePolicy int

const (
	// UnknownPassThrough hands an event of an unknown type to the handler
	// unvalidated. It is the default: a consumer bound to "#" (or "agent.#")
	// must not reject the events of a domain a Python producer added before
	// this service's catalogue knew it.
	UnknownPassThrough UnknownTypePolicy = iota
	// UnknownReject fails an event of an unknown type with a
	// *envelope.PermanentError of kind envelope.KindUnknownType, for a service that
	// must only ever see the types it was built for.
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

	// Logger receives a debug line for every message that is rejected or
	// passed through unvalidated. Optional; default logs nothing. Rejected
	// messages are logged (or parked) by whatever handles the permanent
	// error, so this logger never says more than Debug.
	Logger *slog.Logger
}

func (c *ValidationConfig) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem of the configuration at once.
func (c ValidationConfig) Validate() error {
	var errs []error
	if c.Validator == nil {
		errs = append(errs, errors.New("Validator is required (use the *domains.Registry from catalog.New)"))
	}
	if c.UnknownTypes != UnknownPassThrough && c.UnknownTypes != UnknownReject {
		errs = append(errs, fmt.Errorf("UnknownTypes %s is not a policy: use UnknownPassThrough or UnknownReject", c.UnknownTypes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid middleware ValidationConfig: %w", err)
	}
	return nil
}

// ValidationStats counts what a Validation decided since it was built.
// Every message counts once, under exactly one outcome.
type ValidationStats struct {
	// Valid messages had a payload valid for their event type; they reached
	// the handler.
	Valid uint64
	// Invalid messages had a payload the Validator rejected; they failed
	// with a permanent error of kind envelope.KindInvalid.
	Invalid uint64
	// Malformed messages had a body that was not an envelope (envelope.Malformed);
	// they failed with a permanent error of kind envelope.KindMalformed.
	Malformed uint64
	// Unknown messages had an event type the Validator does not know; they
	// reached the handler unvalidated (UnknownPassThrough) or failed with a
	// permanent error of kind envelope.KindUnknownType (UnknownReject).
	Unknown uint64
}

// Validation is the validation middleware: install its Middleware method
// in a Watermill router (or bus.Service.Use). Build it with NewValidation. It is
// safe for concurrent use; its counters are read with Stats.
type Validation struct {
	cfg ValidationConfig

	valid, invalid, malformed, unknown atomic.Uint64
}

// NewValidation returns the validation middleware. For each message it:
//
//   - fails a message the codec marked malformed (envelope.Malformed) with
//     &envelope.PermanentError{Kind: envelope.KindMalformed, Err: *envelope.MalformedError},
//     whose reason names the field at fault;
//   - validates the payload against the event type envelope.EventType(msg), which
//     is the routing key, and fails an invalid one with
//     &envelope.PermanentError{Kind: envelope.KindInvalid, Err: the Validator's error},
//     so errors.As finds the *domains.ValidationError and its JSON paths;
//   - applies cfg.UnknownTypes to a type the Validator does not know;
//   - otherwise calls the handler.
//
// A rejected message never reaches the handler. Its error is permanent:
// a retry middleware must not retry it, and a poison-queue middleware parks
// it at once. Without one, bus.Service logs and acks it; a plain Watermill
// router would nack it and get it back forever, so install a poison queue
// there (see the package documentation).
//
// Any error of the Validator other than one wrapping
// domains.ErrUnknownEventType counts as an invalid payload: a Validator
// cannot fail "temporarily".
func NewValidation(cfg ValidationConfig) (*Validation, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
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

// check returns nil when msg may reach the handler, or the permanent error
// that stops it.
func (v *Validation) check(msg *message.Message) error {
	if reason, bad := envelope.Malformed(msg); bad {
		v.malformed.Add(1)
		v.cfg.Logger.Debug("malformed message rejected",
			slog.String("event_id", msg.UUID), slog.String("reason", reason))
		return &envelope.PermanentError{Kind: envelope.KindMalformed, Err: &envelope.MalformedError{Reason: reason}}
	}
	eventType := envelope.EventType(msg)
	err := v.cfg.Validator.Validate(eventType, msg.Payload)
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

// Stats returns the counters. Each is read atomically; together they are a
// snapshot only when no message is being validated.
func (v *Validation) Stats() ValidationStats {
	return ValidationStats{
		Valid:     v.valid.Load(),
		Invalid:   v.invalid.Load(),
		Malformed: v.malformed.Load(),
		Unknown:   v.unknown.Load(),
	}
}
