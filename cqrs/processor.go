package cqrs

//lint:file-ignore ST1005 config errors start with the config field's name

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
	"github.com/google/uuid"

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
	// default DefaultSource("").
	Source envelope.Source

	// Patterns are more bindings of the service queue, each also a handler
	// name: "agent.thread.#" takes over the Python processor's binding, and
	// the facts it brings are acked, logged and counted (Stats.Facts). A
	// command a pattern also matches still runs once. Optional; default none.
	Patterns []string

	// Decorators wrap every command handler, inside the processor's own
	// logging and metrics decorators; the first is outermost. Optional.
	Decorators []Decorator

	// Logger logs every command and each fact ignored. Optional; default discards.
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
		errs = append(errs, errors.New("Registry is required (use catalog.New)"))
	}
	for i, p := range c.Patterns {
		if _, err := topic.Compile(p); err != nil {
			errs = append(errs, fmt.Errorf("Patterns[%d]: %w", i, err))
		}
		if slices.Contains(c.Patterns[:i], p) {
			errs = append(errs, fmt.Errorf("Patterns[%d]: %q is listed twice", i, p))
		}
	}
	for i, d := range c.Decorators {
		if d == nil {
			errs = append(errs, fmt.Errorf("Decorators[%d] is nil", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid cqrs ProcessorConfig: %w", err)
	}
	return nil
}

// Processor executes commands and publishes what they cause (see the package doc).
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

// NewProcessor returns a processor that publishes through pub (required,
// bus.Bus.Publisher, whose topic is the routing key); decorate it with
// middleware.NewRecordingPublisher to record correlation links.
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

// Marshaler is the processor's marshaler, for a Watermill CommandBus.
func (p *Processor) Marshaler() *Marshaler { return p.marshaler }

// Stats returns the processor's counters.
func (p *Processor) Stats() Stats { return p.counters.stats() }

// CommandTypes lists the registered commands' routing keys in registration order.
func (p *Processor) CommandTypes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.order)
}

// Handlers returns one Watermill cqrs.CommandHandler per registered command,
// named after its routing key; Handle needs cqrs.CtxWithOriginalMessage.
func (p *Processor) Handlers() []wcqrs.CommandHandler {
	p.mu.Lock()
	defer p.mu.Unlock()
	hs := make([]wcqrs.CommandHandler, len(p.order))
	for i, k := range p.order {
		hs[i] = p.handlers[k]
	}
	return hs
}

// Register adds command type C, inferred from proto, under the routing key of
// C or of the payload it embeds, which must be a domains.Command. Each
// message is decoded into a copy of proto, which carries the dependencies
// and should leave payload fields zero. Call it before AddHandlersToService.
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

// AddHandlersToService binds the processor to svc, once, before svc.Run: one
// handler per command, named after and bound to its routing key, plus one
// per ProcessorConfig.Patterns. Handler names are part of the contract.
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

// handlePatternMessage acks a delivery under a command's own routing key,
// which that command's handler also receives, so no command runs twice.
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

// handleCommandMessage does what Watermill's CommandProcessor does for a
// message, choosing the handler by event type (see the package doc).
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

// commandHandler is one registered command type.
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
	cc := NewCommandContext(env)
	cc.ReplayID = msg.Metadata.Get(envelope.MetaReplay)
	ex := &Execution{HandlerName: h.key, Command: *c, Context: cc, Message: msg}
	return h.handle(envelope.WithCause(ctx, env.EventID), ex)
}

// execute is the core every decorator wraps.
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
	for i, env := range col.Events() {
		pctx := ctx
		if original := col.replayOf[i]; original != uuid.Nil {
			pctx = envelope.WithReplayOf(ctx, original)
		}
		if err := p.eventBus.Publish(pctx, env); err != nil {
			return p.rollBack(ctx, ex, fmt.Errorf("command %s %s: cannot publish %s %s: %w",
				ex.Context.EventType, ex.Context.EventID, env.EventType, env.EventID, err))
		}
		ex.Published = append(ex.Published, env)
	}
	return nil
}

// rollBack calls the command's Rollback, if any, and returns cause joined
// with Rollback's error.
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

// guarded turns a panic into a permanent error, since code that panics once
// panics again on a retry.
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
