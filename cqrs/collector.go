package cqrs

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

// Collector gathers the events a command causes, in order (Python's
// EventCollector); they are published only if Execute succeeds. Each event
// is completed as it is added, so the command sees the id it will have:
// event_id SideEffectID(type, command id, position) unless set, or
// ReplaySideEffectID under a replay (CommandContext.ReplayID);
// correlation_ids led by the command id; the command's agent_context, the
// configured source and the current time unless set; version 1.0.0.
// A Collector belongs to one execution and is not safe for concurrent use.
type Collector struct {
	cc     CommandContext
	cfg    CollectorConfig
	events []envelope.Envelope
	// replayOf[i] is the first run's id of events[i] under a replay, else uuid.Nil.
	replayOf []uuid.UUID
}

// CollectorConfig configures a Collector.
type CollectorConfig struct {
	// Registry gives the routing key of a typed payload and validates
	// payloads before they are collected. Required.
	Registry *domains.Registry
	// Source is the source of collected events that set none. Optional;
	// default DefaultSource("").
	Source envelope.Source
	// Now stamps collected events. Optional; default time.Now.
	Now func() time.Time
}

// DefaultSource is the source of a command processor's events: this host,
// trigger type agent (it answers for an agent), app (default "command_processor").
func DefaultSource(app string) envelope.Source {
	if app == "" {
		app = "command_processor"
	}
	return envelope.Source{Host: envelope.Hostname(), Type: envelope.TriggerAgent, App: app}
}

func (c *CollectorConfig) setDefaults() {
	if c.Source.Host == "" {
		c.Source = DefaultSource(c.Source.App)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem of the configuration at once.
func (c CollectorConfig) Validate() error {
	if c.Registry == nil {
		return errors.New("invalid cqrs CollectorConfig: Registry is required (use catalog.New)")
	}
	return nil
}

// NewCollector returns an empty collector for the command cc describes, as
// a command's tests need.
func NewCollector(cc CommandContext, cfg CollectorConfig) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Collector{cc: cc, cfg: cfg}, nil
}

// Add collects a typed payload under its registered routing key and returns
// its envelope. An unregistered or invalid payload is a permanent error,
// since running the command again cannot fix its code.
func (c *Collector) Add(payload any) (envelope.Envelope, error) {
	key, _, err := routingKeyOf(c.cfg.Registry, payload)
	if err != nil {
		return envelope.Envelope{}, &envelope.PermanentError{Kind: envelope.KindInvalid, Err: fmt.Errorf("cannot collect %T: %w", payload, err)}
	}
	id, _ := c.cc.sideEffectID(key, len(c.events))
	env, err := envelope.New(key, payload, envelope.WithSource(c.cfg.Source), envelope.WithTimestamp(c.cfg.Now()),
		envelope.WithEventID(id))
	if err != nil {
		return envelope.Envelope{}, &envelope.PermanentError{Kind: envelope.KindInvalid, Err: fmt.Errorf("cannot collect %s: %w", key, err)}
	}
	return c.AddEnvelope(env)
}

// AddEnvelope collects a whole envelope (EventType and Payload required),
// completing it as Collector says. An unknown event type is not validated,
// since a command may publish events of domains this service does not know.
func (c *Collector) AddEnvelope(env envelope.Envelope) (envelope.Envelope, error) {
	if env.EventType == "" {
		return envelope.Envelope{}, &envelope.PermanentError{Kind: envelope.KindInvalid, Err: errors.New("cannot collect an envelope without event_type")}
	}
	if err := c.cfg.Registry.Validate(env.EventType, env.Payload); err != nil && !errors.Is(err, domains.ErrUnknownEventType) {
		return envelope.Envelope{}, &envelope.PermanentError{Kind: envelope.KindInvalid, Err: fmt.Errorf("cannot collect %s: %w", env.EventType, err)}
	}
	id, replayOf := c.cc.sideEffectID(env.EventType, len(c.events))
	if env.EventID == uuid.Nil {
		env.EventID = id
	}
	if env.EventID != id {
		replayOf = uuid.Nil // the command chose the id: it replaces nothing known
	}
	if !slices.Contains(env.CorrelationIDs, c.cc.EventID) && c.cc.EventID != uuid.Nil {
		env.CorrelationIDs = append([]uuid.UUID{c.cc.EventID}, env.CorrelationIDs...)
	}
	if env.AgentContext == nil {
		env.AgentContext = c.cc.AgentContext
	}
	if env.Source.Host == "" {
		env.Source = c.cfg.Source
	}
	if env.Timestamp.IsZero() {
		env.Timestamp = c.cfg.Now()
	}
	if env.Version == "" {
		env.Version = envelope.Version
	}
	if err := env.Validate(); err != nil {
		return envelope.Envelope{}, &envelope.PermanentError{Kind: envelope.KindInvalid, Err: fmt.Errorf("cannot collect %s: %w", env.EventType, err)}
	}
	c.events = append(c.events, env)
	c.replayOf = append(c.replayOf, replayOf)
	return env, nil
}

// Events returns a copy of the collected events, in order (Python's collect()).
func (c *Collector) Events() []envelope.Envelope { return slices.Clone(c.events) }
