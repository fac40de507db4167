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

// Collector gathers the events a command causes, in the order it adds them
// (Python's EventCollector). The processor publishes them, in that order,
// only once Execute has returned without error.
//
// Each event is completed as it is added, so the command can see the id it
// will be published under:
//
//   - event_id: SideEffectID(event type, command id, position), unless a
//     whole envelope added with AddEnvelope already has one;
//   - correlation_ids: [command id] (an envelope's own ids are kept, after
//     the command id);
//   - agent_context: the command's, unless the envelope sets its own;
//   - source: the processor's (CollectorConfig.Source) unless set;
//   - timestamp: now unless set; version 1.0.0.
//
// A Collector belongs to one execution and is not safe for concurrent use.
type Collector struct {
	cc     CommandContext
	cfg    CollectorConfig
	events []envelope.Envelope
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

// DefaultSource is the source of the events a command processor publishes:
// this host, trigger type agent (it answers on behalf of an agent), and app
// (default "command_processor").
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

// NewCollector returns an empty collector for the command cc describes.
// The processor makes one per execution; tests of a command make their own.
func NewCollector(cc CommandContext, cfg CollectorConfig) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Collector{cc: cc, cfg: cfg}, nil
}

// Add collects a typed payload under the routing key the registry gives its
// type, and returns the envelope it will be published in. A payload whose
// type is not registered, or that fails validation, is not collected: the
// error is permanent (a envelope.PermanentError of kind invalid), since running
// the command again cannot fix its code.
func (c *Collector) Add(payload any) (envelope.Envelope, error) {
	key, _, err := routingKeyOf(c.cfg.Registry, payload)
	if err != nil {
		return envelope.Envelope{}, &envelope.PermanentError{Kind: envelope.KindInvalid, Err: fmt.Errorf("cannot collect %T: %w", payload, err)}
	}
	env, err := envelope.New(key, payload, envelope.WithSource(c.cfg.Source), envelope.WithTimestamp(c.cfg.Now()),
		envelope.WithEventID(SideEffectID(key, c.cc.EventID, len(c.events))))
	if err != nil {
		return envelope.Envelope{}, &envelope.PermanentError{Kind: envelope.KindInvalid, Err: fmt.Errorf("cannot collect %s: %w", key, err)}
	}
	return c.AddEnvelope(env)
}

// AddEnvelope collects a whole envelope, completing the fields it leaves
// unset (see Collector). EventType and Payload are required. An event type
// the registry knows is validated; an unknown one is collected as is, since
// a command may publish events of domains this service does not know.
func (c *Collector) AddEnvelope(env envelope.Envelope) (envelope.Envelope, error) {
	if env.EventType == "" {
		return envelope.Envelope{}, &envelope.PermanentError{Kind: envelope.KindInvalid, Err: errors.New("cannot collect an envelope without event_type")}
	}
	if err := c.cfg.Registry.Validate(env.EventType, env.Payload); err != nil && !errors.Is(err, domains.ErrUnknownEventType) {
		return envelope.Envelope{}, &envelope.PermanentError{Kind: envelope.KindInvalid, Err: fmt.Errorf("cannot collect %s: %w", env.EventType, err)}
	}
	if env.EventID == uuid.Nil {
		env.EventID = SideEffectID(env.EventType, c.cc.EventID, len(c.events))
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
	return env, nil
}

// Events returns the collected events in the order they were added
// (Python's collect()). The slice is a copy.
func (c *Collector) Events() []envelope.Envelope { return slices.Clone(c.events) }
