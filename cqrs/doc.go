// Package cqrs executes Bloodbank commands and publishes what they cause:
// the Go side of the Python CommandManager, built on Watermill's cqrs
// component. The domain packages are pure data; a command's behaviour lives
// here (package cqrs/commands for the built-in ones).
//
// # Commands
//
// A command is a payload type with behaviour (Python's Invokable[R]):
//
//	type Command[R any] interface {
//		Execute(ctx context.Context, cc CommandContext, events *Collector) (R, error)
//	}
//
// optionally with Rollback(ctx, cc) error (Rollbacker). The type is a payload
// registered as a domains.Command, or a struct embedding one, which keeps the
// domain package free of behaviour and gives the command fields for its
// dependencies. CommandContext carries the command's event id (the
// correlation id of everything it causes), source, agent context and
// timestamp. The Collector gathers the events it causes, in order: typed
// payloads, routed by the registry (Add), or whole envelopes (AddEnvelope).
//
//	p, _ := cqrs.NewProcessor(b.Publisher(), cqrs.ProcessorConfig{Registry: reg, Logger: logger})
//	_ = cqrs.Register(p, commands.AgentThreadPrompt{Agent: commands.EchoAgent{}}) // C inferred
//	_ = p.AddHandlersToService(svc)
//	_ = svc.Run(ctx)
//
// # The flow of one message
//
//  1. The service queue "{exchange}.{service}" is bound to each command's
//     routing key; each command has its own handler on the bus.Service,
//     named after that key. All handlers share the queue, as every handler
//     of a service does.
//  2. The handler names the message by its event type (not its routing
//     key) and hydrates it through the registry: the payload is validated
//     against the type's schema and decoded into a copy of the registered
//     prototype. Malformed or invalid: a permanent error (Stats.Rejected).
//     A fact, as the Python manager does: acked, logged, counted
//     (Stats.Facts). An unknown type: acked, logged, counted (Stats.Unknown).
//     A command that no handler here executes: a permanent error.
//  3. Execute runs with the context of the message, which carries the cause
//     (envelope.WithCause). A panic becomes a permanent error.
//  4. On success, the collected events are published one by one through the
//     event bus, each confirmed before the next, each with correlation_ids =
//     [command id], the command's agent_context unless it set its own, and
//     the id SideEffectID(type, command id, position): a redelivered command
//     publishes the same ids, which consumers deduplicate. The correlation
//     link of each is recorded after its confirm by the publisher, when it is
//     decorated with middleware.NewRecordingPublisher.
//  5. Then the handler returns nil and the message is acked.
//  6. On failure (Execute failed or panicked, or a publish failed): Rollback,
//     then the error is returned; nothing collected after the failure is
//     published, and events already published keep their deterministic ids.
//     A failed command is never acked in silence: a permanent error is parked
//     by the service's poison middleware (or logged and acked by the
//     bus.Service guard when none is installed); any other error nacks the
//     message and the service's retry policy applies.
//
// Every command goes through the same decorators, as in the wild-workouts
// example: the processor's logging decorator writes one line per command
// (id, type, duration_ms, outcome, the events published, the error), its
// metrics decorator counts (Stats), and ProcessorConfig.Decorators add
// yours, inside them.
//
// # What of Watermill's cqrs component this uses, and what not
//
// Used:
//
//   - cqrs.CommandEventMarshaler: Marshaler implements it on the bus's
//     envelope metadata. Name is the routing key the registry gives a type,
//     NameFromMessage is envelope.EventType(msg); Unmarshal validates and decodes.
//   - cqrs.EventBus (NewEventBusWithConfig): publishes every collected
//     envelope, the topic being its routing key.
//   - cqrs.CommandHandler: each registered command is one (Handlers), named
//     after its routing key, with NewCommand and Handle. Handle reads the
//     envelope from the context with cqrs.OriginalMessageFromCtx, which the
//     dispatch sets with cqrs.CtxWithOriginalMessage, exactly as Watermill's
//     CommandProcessor does. The handlers therefore also run unchanged under
//     Watermill's own CommandProcessor, fed by Watermill's CommandBus with
//     this Marshaler (a test does this on GoChannel), which is how a Go
//     producer can send commands (Processor.Marshaler).
//   - cqrs.DuplicateCommandHandlerError for a command registered twice.
//
// Not used:
//
//   - cqrs.CommandProcessor, on a bus.Service. It adds one router handler
//     per command with a subscriber from its SubscriberConstructor, but a
//     service's handlers must share one subscriber (the service queue: one
//     delivery fanned out to every matching handler, acked once all acked,
//     drained on shutdown), and bus.Service creates that subscriber inside
//     Run and does not expose it. So AddHandlersToService registers each
//     handler with Service.HandleMessage and does, in twenty lines, what
//     CommandProcessor's router handler does (name, find handler, decode
//     into NewCommand, Handle with the original message in the context),
//     with one difference: the handler is chosen by the message's event
//     type, so a fact or another command arriving under a command's key is
//     settled deliberately instead of being acked as "a different command
//     type" in silence. If bus.Service exposed a per-handler subscriber of
//     the shared queue, AddHandlersToService could become
//     cqrs.NewCommandProcessorWithConfig(svc.Router(), ...).AddHandlers.
//   - cqrs.CommandBus inside the processor: commands arrive from the bus.
//   - cqrs.EventProcessor and event handlers: facts are handled by typed
//     bus handlers (bus.Handle); the processor only ignores them.
//   - The request-reply component: the response is an event on the bus,
//     linked by correlation_ids, as in Python.
package cqrs
