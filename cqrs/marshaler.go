package cqrs

import (
	"bytes"
	"errors"
	"fmt"

	wcqrs "github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

// Marshaler is Watermill's cqrs.CommandEventMarshaler on the bus's envelope
// metadata. Its Unmarshal errors are permanent (envelope.PermanentError): a
// malformed or invalid message stays so on every redelivery.
type Marshaler struct {
	reg *domains.Registry
	src envelope.Source
}

var _ wcqrs.CommandEventMarshaler = (*Marshaler)(nil)

// NewMarshaler returns a Marshaler on reg (required); source (default
// DefaultSource("")) is that of the envelopes Marshal builds.
func NewMarshaler(reg *domains.Registry, source envelope.Source) (*Marshaler, error) {
	if reg == nil {
		return nil, errors.New("cannot build cqrs Marshaler: a registry is required (use catalog.New)")
	}
	if source.Host == "" {
		source = DefaultSource(source.App)
	}
	return &Marshaler{reg: reg, src: source}, nil
}

// Name returns the routing key of v, or "" when v's type is not registered.
func (m *Marshaler) Name(v any) string {
	switch e := v.(type) {
	case envelope.Envelope:
		return e.EventType
	case *envelope.Envelope:
		return e.EventType
	}
	key, _, err := routingKeyOf(m.reg, v)
	if err != nil {
		return ""
	}
	return key
}

// NameFromMessage returns the event type of msg.
func (m *Marshaler) NameFromMessage(msg *message.Message) string { return envelope.EventType(msg) }

// Marshal turns v into a message: a envelope.Envelope as it is, any other
// payload in a new envelope under its routing key.
func (m *Marshaler) Marshal(v any) (*message.Message, error) {
	switch e := v.(type) {
	case envelope.Envelope:
		return envelope.NewMessage(e)
	case *envelope.Envelope:
		return envelope.NewMessage(*e)
	}
	key, _, err := routingKeyOf(m.reg, v)
	if err != nil {
		return nil, fmt.Errorf("cannot marshal %T: %w", v, err)
	}
	env, err := envelope.New(key, v, envelope.WithSource(m.src))
	if err != nil {
		return nil, fmt.Errorf("cannot marshal %s: %w", key, err)
	}
	return envelope.NewMessage(env)
}

// Unmarshal validates msg's payload against its event type, as Python's
// registry does, and decodes it into v, a pointer, with defaults applied; a
// *envelope.Envelope receives the whole envelope. An unknown type is not validated.
func (m *Marshaler) Unmarshal(msg *message.Message, v any) error {
	if reason, bad := envelope.Malformed(msg); bad {
		return &envelope.PermanentError{Kind: envelope.KindMalformed, Err: &envelope.MalformedError{Reason: reason}}
	}
	if e, ok := v.(*envelope.Envelope); ok {
		env, err := envelope.FromMessage(msg)
		if err != nil {
			return &envelope.PermanentError{Kind: envelope.KindMalformed, Err: err}
		}
		*e = env
		return nil
	}
	eventType := m.NameFromMessage(msg)
	if err := m.reg.Validate(eventType, msg.Payload); err != nil && !errors.Is(err, domains.ErrUnknownEventType) {
		return &envelope.PermanentError{Kind: envelope.KindInvalid, Err: fmt.Errorf("%s %s: %w", eventType, msg.UUID, err)}
	}
	if !bytes.HasPrefix(bytes.TrimLeft(msg.Payload, " \t\r\n"), []byte("{")) {
		return &envelope.PermanentError{Kind: envelope.KindInvalid, Err: fmt.Errorf("%s %s: the payload is not a JSON object", eventType, msg.UUID)}
	}
	if err := envelope.UnmarshalPayload(msg.Payload, v); err != nil {
		return &envelope.PermanentError{Kind: envelope.KindInvalid, Err: fmt.Errorf("cannot decode %s %s into %T: %w", eventType, msg.UUID, v, err)}
	}
	return nil
}
