// Package middleware holds Watermill handler middleware and publisher
// decorators for Bloodbank events. Nothing here needs a bus.Service: every
// piece works in any Watermill router, on any Pub/Sub, including a plain
// message.NewRouter on Watermill's GoChannel. The package reads the message
// metadata keys of package bus (bus.MetaEventType, bus.MetaMalformed,
// bus.MetaCorrelationIDs, ...) and fails with *bus.PermanentError, and it
// depends on the validator and the correlation recorder only through two
// small interfaces, Validator and LinkRecorder.
//
// # Validation
//
// Validate builds the validation middleware. A message the wire codec marked
// malformed, or whose payload is invalid for its event type (the routing
// key), never reaches the handler: it fails with a *bus.PermanentError of
// kind bus.KindMalformed or bus.KindInvalid, whose error names the problem
// ("payload.tags: expected array, got string"; errors.As finds the
// *domains.ValidationError). An event type the catalogue does not know is
// passed through by default (UnknownPassThrough), because a consumer bound
// to "#" must not reject the events of a domain a Python producer added
// first; UnknownReject fails it with kind bus.KindUnknownType. Stats counts
// the outcomes.
//
// # Correlation
//
// Two pieces link what a handler produces to the event it handles, and
// record the link in the correlation graph that Go and Python share:
//
//   - Causation, a handler middleware, puts the incoming event id into the
//     message's context (bus.WithCause) and stamps correlation_ids =
//     [incoming id] on the messages the handler returns.
//   - RecordingPublisher, a message.Publisher decorator, stamps the cause
//     from a message's context on a message without correlation ids,
//     publishes, and once the publish succeeded records the links of the
//     whole Publish call in one LinkRecorder call (a *correlation.Recorder,
//     which never fails and never blocks the bus for long).
//
// Install the decorator where messages leave the process: on the bus with
// bus.Bus.DecoratePublisher (for bus.Bus.Publish), and on a router with
// router.AddPublisherDecorators(RecordingPublisherDecorator(rec)) (for the
// messages handlers return). A handler gets links only if it publishes with
// the context it is given (msg.Context(), or the ctx of a bus.HandlerFunc),
// or returns its messages: publishing with context.Background() breaks the
// chain. This also covers Watermill's cqrs component, which Watermill's own
// CorrelationID middleware does not: its processors pass msg.Context() to
// command and event handlers, and its EventBus.Publish(ctx, ...) puts ctx on
// the message, so with Causation on the processor's router and the
// EventBus's publisher decorated, what a handler publishes is linked.
//
// # Order
//
// The architecture's order, outermost first:
//
//	recover · metrics/trace · poison · dedup · retry · validate · correlation · timeout
//
// Validation sits inside retry so that the retry middleware sees its
// permanent errors and does not retry them, and inside poison so that they
// are parked. Causation sits inside validation, so only valid events cause
// anything, and outside the timeout, whose context then still carries the
// cause. With bus.Service.Use, or router.AddMiddleware, the first middleware
// given is the outermost.
//
// # In a plain Watermill router
//
//	reg, _ := catalog.New()
//	validation, _ := middleware.Validate(middleware.ValidateConfig{Validator: reg})
//	store, _ := correlation.NewEmbedded(correlation.RedisConfig{})  // or a RedisStore
//	rec, _ := correlation.NewRecorder(store, correlation.RecorderConfig{Batching: true})
//
//	router, _ := message.NewRouter(message.RouterConfig{}, logger)
//	router.AddPublisherDecorators(middleware.RecordingPublisherDecorator(rec))
//	router.AddMiddleware(
//		wmmiddleware.Recoverer,
//		poisonQueue, // wmmiddleware.PoisonQueueWithFilter(pub, "poison", bus.IsPermanent)
//		validation.Middleware,
//		middleware.Causation,
//	)
//	router.AddHandler("rag_ingest", "fireflies.transcript.ready", sub, "fireflies.transcript.processed", pub, handle)
//
// A plain router nacks every handler error, and most Pub/Subs then redeliver
// the message at once: without a poison queue (or another middleware that
// acks permanent errors, as bus.Service does) a rejected message comes back
// forever. Watermill's Retry middleware retries every error unless its
// ShouldRetry says otherwise; give it one that returns false for
// bus.IsPermanent(params.Err). The runnable Example wires these pieces on
// GoChannel.
//
// # On a bus.Service
//
//	svc.Use(validation.Middleware, middleware.Causation)
//	b.DecoratePublisher(func(p message.Publisher) message.Publisher {
//		return middleware.NewRecordingPublisher(p, rec)
//	})
//
// bus.Handle already gives typed handlers a context with the cause; on a
// service, Causation gives it to handlers registered with HandleMessage,
// which then publish with bus.Bus.Publish(msg.Context(), ...).
package middleware
