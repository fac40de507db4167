// Package cqrs executes Bloodbank commands and publishes what they cause:
// the Go side of the Python CommandManager, built on Watermill's cqrs
// component. The domain packages are pure data; a command's behaviour lives
// here (package cqrs/commands for the built-in ones).
//
// A command (Command, Python's Invokable[R]) is a payload type registered as
// a domains.Command, or a struct embedding one that adds Execute and the
// command's dependencies; it may also implement Rollbacker. Execute gets a
// CommandContext and a Collector, which gathers the events it causes:
//
//	p, _ := cqrs.NewProcessor(b.Publisher(), cqrs.ProcessorConfig{Registry: reg, Logger: logger})
//	_ = cqrs.Register(p, commands.AgentThreadPrompt{Agent: commands.EchoAgent{}}) // C inferred
//	_ = p.AddHandlersToService(svc)
//	_ = svc.Run(ctx)
//
// # The flow of one message
//
//  1. Each command has its own handler on the bus.Service, named after and
//     bound to its routing key; all share the service queue.
//  2. The handler picks the command by the message's event type (not its
//     routing key), validates the payload against the type's schema and
//     decodes it into a copy of the registered prototype. Malformed or
//     invalid, or a command no handler here executes: a permanent error
//     (Stats.Rejected). A fact, as in Python, or an unknown type: acked,
//     logged and counted (Stats.Facts, Stats.Unknown).
//  3. Execute runs with the message's context, which carries the cause
//     (envelope.WithCause). A panic becomes a permanent error.
//  4. On success, the collected events are published in order, each
//     confirmed before the next, each with correlation_ids = [command id]
//     and the id SideEffectID(type, command id, position): a redelivered
//     command publishes the same ids, which consumers deduplicate. Then the
//     message is acked. Correlation links are recorded when the publisher is
//     decorated with middleware.NewRecordingPublisher.
//  5. On failure (Execute failed or panicked, or a publish failed): Rollback,
//     then the error is returned; nothing collected after the failure is
//     published. A permanent error is parked by the service's poison
//     middleware (or logged and acked by the bus.Service guard); any other
//     nacks the message and the service's retry policy applies.
//
// Every command goes through the same decorators (Decorator), as in the
// wild-workouts example: the processor's logging and metrics (Stats), then
// ProcessorConfig.Decorators.
//
// # Watermill's cqrs component
//
// Marshaler is a cqrs.CommandEventMarshaler on the envelope metadata, and
// each command is a cqrs.CommandHandler (Processor.Handlers), so the
// handlers also run under Watermill's CommandProcessor fed by its
// CommandBus, which is how Go sends commands. A bus.Service does not use
// CommandProcessor, which gives each handler its own subscriber, while a
// service's handlers share the one subscriber of its queue (one delivery
// fanned out, acked once all acked, drained on shutdown).
// AddHandlersToService picks the handler by event type, so a fact or
// another command under a command's key is settled deliberately rather than
// acked in silence. A command's response is an event linked by
// correlation_ids, as in Python, not Watermill's request-reply.
package cqrs
