package cqrs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	wcqrs "github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/topic"
	"github.com/33god/bloodbank-go/domains"
)

// ErrNoExecutor is wrapped by the permanent error of a message whose event
// type is a registered command that no handler of the processor executes.
var ErrNoExecutor = errors.New("no handler executes this command type")

// ErrPanic is wrapped by the permanent error of a command whose Execute or
// Rollback panicked.
var ErrPanic = errors.New("command panicked")

// ProcessorConfig configures a Processor.
type ProcessorConfig struct {
	// Registry hydrates commands and names events. Required; usually
	// catalog.New() plus the service's own domains.
	Registry *domains.Registry

	// Source is the source of the events commands publish. Optional;
	// default DefaultSource(""): this host, type agent, app
	// "command_processor".
	Source envelope.Source

	// Patterns are more binding patterns of the service queue, for facts:
	// with "agent.thread.#" the queue takes over the binding of the Python
	// command processor, and the facts that arrive through it (the
	// responses) are acked, logged and counted (Stats.Facts), never
	// executed. A command whose routing key a pattern also matches still
	// runs once, in its own handler. Each pattern is a handler name too.
	// Optional; default none: each command's routing key is bound alone.
	Patterns []string

	// Decorators wrap every command handler, inside the processor's own
	// logging and metrics decorators; the first is outermost. Optional.
	Decorators []Decorator

	// Logger receives the line of every command and the facts ignored.
	// Optional; default logs nothing.
	Logger *slog.Logger

	// Now stamps the events commands publish. Optional; default time.Now.
	Now func() time.Time
}

func (c *ProcessorConfig) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Source.Host == "" {
		c.Source = DefaultSource(c.Source.App)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem of the configuration at once.
func (c ProcessorConfig) Validate() error {
	var errs []error
	if c.Registry == nil {
		//lint:ignore ST1005 the message starts with the config field's name
		errs = append(errs, errors.New("Registry is required (use catalog.New)"))
	}
	for i, p := range c.Patterns {
		if _, err := topic.Compile(p); err != nil {
			//lint:ignore ST1005 the message starts with the config field's name
			errs = append(errs, fmt.Errorf("Patterns[%d]: %w", i, err))
		}
		if slices.Contains(c.Patterns[:i], p) {
			//lint:ignore ST1005 the message starts with the config field's name
			errs = append(errs, fmt.Errorf("Patterns[%d]: %q is listed twice", i, p))
		}
	}
	for i, d := range c.Decorators {
		if d == nil {
			//lint:ignore ST1005 the message starts with the config field's name
			errs = append(errs, fmt.Errorf("Decorators[%d] is nil", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid cqrs ProcessorConfig: %w", err)
	}
	return nil
}

// Processor executes commands and publishes what they cause. Build it with
// NewProcessor, add commands with Register, then bind it to a service with
// AddHandlersToService (or hand Handlers to a Watermill CommandProcessor).
// See the package documentation for the flow of a message.
type Processor struct {
	cfg       ProcessorConfig
	marshaler *Marshaler
	eventBus  *wcqrs.EventBus
	counters  counters

	mu       sync.Mutex
	handlers map[string]wcqrs.CommandHandler // by routing key
	order    []string
	attached bool
}

// NewProcessor returns a processor that publishes the events commands
// collect through pub (required): the bus's publisher, bus.Bus.Publisher,
// whose topic is the routing key. To record each event's correlation link
// once its publish is confirmed, decorate that publisher with
// middleware.NewRecordingPublisher first (bus.Bus.DecoratePublisher).
func NewProcessor(pub message.Publisher, cfg ProcessorConfig) (*Processor, error) {
	if pub == nil {
		return nil, errors.New("cannot build cqrs Processor: a publisher is required (use bus.Bus.Publisher)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := NewMarshaler(cfg.Registry, cfg.Source)
	if err != nil {
		return nil, err
	}
	eb, err := wcqrs.NewEventBusWithConfig(pub, wcqrs.EventBusConfig{
		GeneratePublishTopic: func(p wcqrs.GenerateEventPublishTopicParams) (string, error) {
			if p.EventName == "" {
				return "", fmt.Errorf("%T has no routing key", p.Event)
			}
			return p.EventName, nil
		},
		Marshaler: m,
		Logger:    bus.WatermillLogger(cfg.Logger),
	})
	if err != nil {
		return nil, err
	}
	return &Processor{cfg: cfg, marshaler: m, eventBus: eb, handlers: map[string]wcqrs.CommandHandler{}}, nil
}

// Marshaler is the processor's marshaler, for a Watermill CommandBus that
// sends commands from Go (wcqrs.NewCommandBusWithConfig).
func (p *Processor) Marshaler() *Marshaler { return p.marshaler }

// Stats returns the processor's counters.
func (p *Processor) Stats() Stats { return p.counters.stats() }

// CommandTypes lists the routing keys of the registered commands, in the
// order they were registered.
func (p *Processor) CommandTypes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.order)
}

// Handlers returns the command handlers, one per registered command, as
// Watermill's cqrs.CommandHandler: each is named after its routing key,
// NewCommand returns a fresh *C, and Handle expects the context Watermill's
// CommandProcessor gives it (cqrs.CtxWithOriginalMessage), from which it
// reads the envelope.
func (p *Processor) Handlers() []wcqrs.CommandHandler {
	p.mu.Lock()
	defer p.mu.Unlock()
	hs := make([]wcqrs.CommandHandler, len(p.order))
	for i, k := range p.order {
		hs[i] = p.handlers[k]
	}
	return hs
}

// Register adds command type C to p, executed for every message of its
// routing key: the key the registry gives C, or the payload type C embeds,
// which must be registered as a domains.Command. Each message is decoded
// into a copy of proto, so proto carries the command's dependencies (in
// fields the JSON payload does not set) and its payload fields should be
// zero. C is inferred from proto:
//
//	cqrs.Register(p, commands.AgentThreadPrompt{Agent: commands.EchoAgent{}})
//
// Register every command before AddHandlersToService.
func Register[C Command[R], R any](p *Processor, proto C) error {
	key, et, err := routingKeyOf(p.cfg.Registry, proto)
	if err != nil {
		return fmt.Errorf("cannot register command %T: %w", proto, err)
	}
	if et.Kind() != domains.Command {
		return fmt.Errorf("cannot register command %T: %s is registered as a %s, not a command", proto, key, et.Kind())
	}
	if et.IsTemplate() {
		return fmt.Errorf("cannot register command %T: its routing key %s is a template", proto, key)
	}
	h := &commandHandler[C, R]{p: p, key: key, proto: proto}
	h.handle = h.execute
	for _, d := range slices.Backward(append([]Decorator{logging(p.cfg.Logger), p.counters.metrics}, p.cfg.Decorators...)) {
		h.handle = d(h.handle)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.attached {
		return fmt.Errorf("cannot register command %s: the processor is already bound to a service", key)
	}
	if _, taken := p.handlers[key]; taken {
		return wcqrs.DuplicateCommandHandlerError{CommandName: key}
	}
	p.handlers[key] = h
	p.order = append(p.order, key)
	return nil
}

// AddHandlersToService binds the processor to svc: one handler per command,
// named after its routing key and bound to it, plus one per
// ProcessorConfig.Patterns. They share the service queue, as every handler
// of a service does. Call it once, after every Register and before
// svc.Run. The handler names are part of the contract (see bus.Service).
func (p *Processor) AddHandlersToService(svc *bus.Service) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.attached {
		return errors.New("cannot bind the processor: it is already bound to a service")
	}
	if len(p.order) == 0 {
		return errors.New("cannot bind the processor: no command is registered")
	}
	for _, pat := range p.cfg.Patterns {
		if _, isKey := p.handlers[pat]; isKey {
			return fmt.Errorf("cannot bind the processor: pattern %q is a command's routing key, which is bound anyway", pat)
		}
	}
	for _, key := range p.order {
		if err := svc.HandleMessage(key, key, p.handleCommandMessage); err != nil {
			return err
		}
	}
	for _, pat := range p.cfg.Patterns {
		if err := svc.HandleMessage(pat, pat, p.handlePatternMessage); err != nil {
			return err
		}
	}
	p.attached = true
	return nil
}

// handlePatternMessage handles what a ProcessorConfig.Patterns binding
// brings. A delivery under a command's own routing key also reaches that
// command's handler, which executes it; here it is only acked, so that no
// command runs twice.
func (p *Processor) handlePatternMessage(msg *message.Message) error {
	key := msg.Metadata.Get(envelope.MetaRoutingKey)
	if key == "" {
		key = envelope.EventType(msg)
	}
	p.mu.Lock()
	_, bound := p.handlers[key]
	p.mu.Unlock()
	if bound {
		return nil
	}
	return p.handleCommandMessage(msg)
}

// handleCommandMessage is the service handler of every command: what
// Watermill's CommandProcessor does for a message, with the handler chosen by
// the event type (see the package doc, "Not used").
func (p *Processor) handleCommandMessage(msg *message.Message) error {
	if reason, bad := envelope.Malformed(msg); bad {
		p.counters.rejected.Add(1)
		return &envelope.PermanentError{Kind: envelope.KindMalformed, Err: &envelope.MalformedError{Reason: reason}}
	}
	name := p.marshaler.NameFromMessage(msg)
	p.mu.Lock()
	h, ok := p.handlers[name]
	p.mu.Unlock()
	if !ok {
		return p.notExecuted(msg, name)
	}
	cmd := h.NewCommand()
	ctx := wcqrs.CtxWithOriginalMessage(msg.Context(), msg)
	msg.SetContext(ctx)
	if err := p.marshaler.Unmarshal(msg, cmd); err != nil {
		p.counters.rejected.Add(1)
		return err
	}
	return h.Handle(ctx, cmd)
}

// notExecuted settles a message whose event type no handler executes.
func (p *Processor) notExecuted(msg *message.Message, eventType string) error {
	attrs := []slog.Attr{
		slog.String("id", msg.UUID), slog.String("type", eventType),
		slog.String("routing_key", msg.Metadata.Get(envelope.MetaRoutingKey)),
	}
	et, err := p.cfg.Registry.LookupKey(eventType)
	switch {
	case err == nil && et.Kind() == domains.Fact:
		p.counters.facts.Add(1)
		p.cfg.Logger.LogAttrs(msg.Context(), slog.LevelInfo, "fact on the command queue: acked, not executed", attrs...)
		return nil
	case err == nil:
		p.counters.rejected.Add(1)
		return &envelope.PermanentError{Kind: envelope.KindUnknownType, Err: fmt.Errorf("%s %s: %w", eventType, msg.UUID, ErrNoExecutor)}
	default:
		p.counters.unknown.Add(1)
		p.cfg.Logger.LogAttrs(msg.Context(), slog.LevelWarn, "unknown event type on the command queue: acked, not executed", attrs...)
		return nil
	}
}

// commandHandler is one registered command type as a Watermill
// cqrs.CommandHandler.
type commandHandler[C Command[R], R any] struct {
	p      *Processor
	key    string
	proto  C
	handle HandlerFunc
}

var _ wcqrs.CommandHandler = (*commandHandler[Command[any], any])(nil)

func (h *commandHandler[C, R]) HandlerName() string { return h.key }

func (h *commandHandler[C, R]) NewCommand() any {
	c := clone(h.proto)
	return &c
}

func (h *commandHandler[C, R]) Handle(ctx context.Context, cmd any) error {
	c, ok := cmd.(*C)
	if !ok {
		return &envelope.PermanentError{Kind: envelope.KindHandler, Err: fmt.Errorf("handler %s got a %T, want a %T", h.key, cmd, c)}
	}
	msg := wcqrs.OriginalMessageFromCtx(ctx)
	if msg == nil {
		return errors.New("no message in the context: Handle must be called by a command processor (cqrs.CtxWithOriginalMessage)")
	}
	env, err := envelope.FromMessage(msg)
	if err != nil {
		h.p.counters.rejected.Add(1)
		return &envelope.PermanentError{Kind: envelope.KindMalformed, Err: err}
	}
	ex := &Execution{HandlerName: h.key, Command: *c, Context: NewCommandContext(env), Message: msg}
	return h.handle(envelope.WithCause(ctx, env.EventID), ex)
}

// execute is the core every decorator wraps: execute, then publish; roll
// back on any failure.
func (h *commandHandler[C, R]) execute(ctx context.Context, ex *Execution) error {
	c := ex.Command.(C)
	return h.p.run(ctx, ex, func(col *Collector) (any, error) { return c.Execute(ctx, ex.Context, col) })
}

func (p *Processor) run(ctx context.Context, ex *Execution, exec func(*Collector) (any, error)) error {
	col := &Collector{cc: ex.Context, cfg: CollectorConfig{Registry: p.cfg.Registry, Source: p.cfg.Source, Now: p.cfg.Now}}
	result, err := p.guarded(ex, func() (any, error) { return exec(col) })
	if err != nil {
		return p.rollBack(ctx, ex, fmt.Errorf("command %s %s failed: %w", ex.Context.EventType, ex.Context.EventID, err))
	}
	ex.Result = result
	for _, env := range col.Events() {
		if err := p.eventBus.Publish(ctx, env); err != nil {
			return p.rollBack(ctx, ex, fmt.Errorf("command %s %s: cannot publish %s %s: %w",
				ex.Context.EventType, ex.Context.EventID, env.EventType, env.EventID, err))
		}
		ex.Published = append(ex.Published, env)
	}
	return nil
}

// rollBack calls the command's Rollback, if it has one, after a failure and
// returns the failure, joined with Rollback's own error if it failed.
func (p *Processor) rollBack(ctx context.Context, ex *Execution, cause error) error {
	ex.RolledBack = true
	rb, ok := ex.Command.(Rollbacker)
	if !ok {
		return cause
	}
	if _, err := p.guarded(ex, func() (any, error) { return nil, rb.Rollback(ctx, ex.Context) }); err != nil {
		return errors.Join(cause, fmt.Errorf("rollback failed: %w", err))
	}
	return cause
}

// guarded calls f and turns a panic into a permanent error, logging the
// stack: code that panics once panics again on a retry.
func (p *Processor) guarded(ex *Execution, f func() (any, error)) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.cfg.Logger.Error("command panicked", slog.String("id", ex.Context.EventID.String()),
				slog.String("type", ex.Context.EventType), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			res, err = nil, &envelope.PermanentError{Kind: envelope.KindHandler, Err: fmt.Errorf("%w: %v", ErrPanic, r)}
		}
	}()
	return f()
}
