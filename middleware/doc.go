// Package middleware holds Watermill handler middleware and publisher
// decorators for Bloodbank events. Nothing here needs a bus.Service: every
// piece works in any Watermill router on any Pub/Sub, GoChannel included.
// It reads the metadata keys of package envelope, fails with
// *envelope.PermanentError, and depends on the validator and the correlation
// recorder only through two small interfaces, Validator and LinkRecorder.
//
// # Validation
//
// NewValidation builds the validation middleware. A message the wire codec marked
// malformed, or whose payload is invalid for its event type (the routing
// key), never reaches the handler: it fails with a *envelope.PermanentError
// of kind envelope.KindMalformed or envelope.KindInvalid naming the problem
// ("payload.tags: expected array, got string"). An event type the catalogue
// does not know passes through by default (UnknownPassThrough): a consumer
// bound to "#" must not reject a domain a Python producer added first.
//
// # Correlation
//
// Two pieces link what a handler produces to the event it handles, and
// record the link in the correlation graph that Go and Python share:
//
//   - Causation, a handler middleware, puts the incoming event id into the
//     message's context (envelope.WithCause) and stamps correlation_ids =
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
// chain. Watermill's cqrs component is covered too: its processors pass
// msg.Context() to handlers and its EventBus.Publish(ctx, ...) puts ctx on
// the message, so with Causation on the router and the EventBus's publisher
// decorated, what a handler publishes is linked.
//
// # Reliability
//
// Poison, Dedup and Retry keep a service from losing a message or looping
// on one. Retry runs the handler again, with backoff and a fresh context
// per attempt, while its error is transient, then sends the message back
// through the broker after a delay (a Redeliverer). Poison parks what fails
// permanently, or what Retry gave up on, with the producer's body byte for
// byte and the reason, kind, handler, attempts and failure times in
// HeaderPoison* headers, and acks only once the broker confirmed it. Dedup
// acks a message whose handler already succeeded for its event id. Package
// middleware/reliability installs all three on a bus.Service with its delay
// and poison queues, and lists, replays and purges what was parked.
//
// # Tracing
//
// NewTracing carries OpenTelemetry traces across the bus in the W3C
// traceparent and tracestate headers, so that a prompt, its execution and
// its response are one trace, whichever process (Go or Python) handles each
// step:
//
//   - Tracing.DecoratePublisher (bus.Bus.DecoratePublisher) or
//     Tracing.PublisherDecorator (a router's AddPublisherDecorators)
//     starts a producer span "publish <routing key>" per message and writes
//     its context into the message's headers;
//   - Tracing.Middleware starts a consumer span "handle <routing key>" from
//     those headers and gives the handler its context;
//   - Tracing.Execute wraps one command's execution in a span "execute
//     <command>", for the command processor's decorator
//     (cqrs.ProcessorConfig.Decorators).
//
// Spans carry the event id (AttrEventID), so a trace and `bb trace <id>`
// meet. Without a TracerProvider every span is a no-op, but a delivery's
// traceparent still reaches what its handler publishes. The binaries turn
// spans on with BB_TRACING=stdout (examples/tracing). Decorate the publisher
// before anything publishes through it: a cqrs processor keeps the
// publisher it was built with.
//
// # Order
//
// The architecture's order, outermost first:
//
//	recover · metrics/trace · poison · dedup · retry · validate · correlation · timeout
//
// Metrics and tracing sit outside the reliability middleware, so that one
// measurement and one span cover a delivery with its retries and parking.
// Poison is outside Dedup and Retry, so it parks what Retry gave up on;
// Dedup is outside Retry, so it marks a message once some attempt
// succeeded. Validation sits inside Retry and Poison, so its permanent
// errors are not retried but parked at once. Causation sits inside
// validation, so only valid events cause anything, and outside the
// timeout, whose context then still carries the cause. The timeout is
// innermost, so each attempt gets its own deadline (as
// RetryConfig.AttemptTimeout gives from within Retry). With
// bus.Service.Use or router.AddMiddleware, the first middleware given is
// the outermost.
//
// # In a plain Watermill router
//
//	reg, _ := catalog.New()
//	validation, _ := middleware.NewValidation(middleware.ValidationConfig{Validator: reg})
//	retry, _ := middleware.NewRetry(middleware.RetryConfig{}) // 3 attempts, backoff; no redelivery without a Redeliverer
//	// pub returns once the parked message is stored, and is not the Pub/Sub
//	// the router is busy consuming from with BlockPublishUntilSubscriberAck.
//	poison, _ := middleware.NewPoison(middleware.PoisonConfig{Publisher: pub, Queue: "rag_ingest.poison", Service: "rag_ingest"})
//	dedup, _ := middleware.NewDedup(middleware.DedupConfig{Store: middleware.NewRedisDedupStore(redisClient, ""), Service: "rag_ingest"})
//	tr := middleware.NewTracing(middleware.TracingConfig{TracerProvider: tp})
//	store, _ := correlation.NewEmbeddedStore(correlation.RedisConfig{}) // or a RedisStore
//	rec, _ := correlation.NewRecorder(store, correlation.RecorderConfig{Batching: true})
//
//	router, _ := message.NewRouter(message.RouterConfig{}, logger)
//	router.AddPublisherDecorators(middleware.RecordingPublisherDecorator(rec), tr.PublisherDecorator())
//	router.AddMiddleware(
//		wmmiddleware.Recoverer,
//		tr.Middleware,
//		poison.Middleware,
//		dedup.Middleware,
//		retry.Middleware,
//		validation.Middleware,
//		middleware.Causation,
//		wmmiddleware.Timeout(time.Minute),
//	)
//	router.AddHandler("rag_ingest", "fireflies.transcript.ready", sub, "fireflies.transcript.processed", pub, handle)
//
// A plain router nacks every handler error, and most Pub/Subs redeliver at
// once: without Poison (or bus.Service, which acks permanent errors) a
// rejected message comes back forever. Poison rather than Watermill's
// PoisonQueue: it keeps the producer's body byte for byte and writes the
// headers `bb dlq` reads. Retry rather than Watermill's: it leaves permanent
// errors alone, and each attempt gets a fresh context instead of one a
// Timeout already ended. The runnable Example and examples/middleware-reuse
// wire these pieces on GoChannel.
//
// # On a bus.Service
//
// cmd/command-processor installs the whole stack this way:
//
//	svc.Router().AddMiddleware(wmmiddleware.Recoverer) // recover: router middleware run before svc.Use's
//	svc.Router().AddMiddleware(metricsMiddleware)      // metrics
//	svc.Use(tr.Middleware)                             // trace
//	rel, _ := reliability.Use(ctx, b, svc, reliability.Config{
//		DedupStore:            middleware.NewRedisDedupStore(redisClient, ""), // the correlation Redis
//		DedupMarkInBackground: true,
//	}) // poison · dedup · retry, with the service's poison and delay queues
//	svc.Use(validation.Middleware, middleware.Causation, wmmiddleware.Timeout(time.Minute))
//
//	b.DecoratePublisher(func(p message.Publisher) message.Publisher {
//		return middleware.NewRecordingPublisher(p, rec)
//	})
//	b.DecoratePublisher(tr.DecoratePublisher) // before cqrs.NewProcessor(b.Publisher(), ...)
//
// rel.Stats() feeds the retried, parked and deduplicated counters, and
// rel.Flush(ctx) after svc.Run returns writes the last dedup marks.
// bus.Handle already gives typed handlers a context with the cause; on a
// service, Causation gives it to handlers registered with HandleMessage,
// which then publish with bus.Bus.Publish(msg.Context(), ...).
package middleware
