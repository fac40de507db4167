// Package middleware holds Watermill handler middleware and publisher
// decorators for Bloodbank events. Nothing here needs a bus.Service: every
// piece works in any Watermill router on any Pub/Sub, GoChannel included.
// It reads the metadata keys of package envelope, fails with
// *envelope.PermanentError, and depends on the validator and the correlation
// recorder only through two small interfaces, Validator and LinkRecorder.
//
// Validation stops an invalid message before the handler with a permanent
// error. Guard stops a runaway causal chain (too deep, agents answering each
// other, too many descendants of one root) with a permanent error of kind
// envelope.KindRunaway; it sits inside Poison, which parks it, and outside
// Causation, which hands each event's depth and root on to what it causes. Causation and RecordingPublisher link what a handler publishes with
// its context (not context.Background()) or returns to the event it handles,
// in the correlation graph Go and Python share. Poison, Dedup and Retry keep
// a service from losing or looping on a message (package
// middleware/reliability installs them on a bus.Service). Tracing carries
// OpenTelemetry traces in the W3C traceparent and tracestate headers;
// decorate a publisher before anything uses it, as a cqrs processor keeps
// the publisher it was built with.
//
// RecordingPublisher also charges the cost a response reports
// (DefaultLinkCost) to the root of its chain, with its link. TokenBudget
// parks, with kind "runaway", the messages of a root that has spent its
// token budget; install it inside Poison and Retry, after validation.
//
// # Order
//
// The architecture's order, outermost first:
//
//	recover · metrics/trace · poison · dedup · guard · retry · validate · correlation · timeout
//
// Metrics and tracing sit outside the reliability middleware, so that one
// measurement and one span cover a delivery with its retries and parking.
// Poison is outside Dedup and Retry, so it parks what Retry gave up on;
// Dedup is outside Retry, so it marks a message once some attempt
// succeeded. Validation sits inside Retry and Poison, so its permanent
// errors are not retried but parked at once. Causation sits inside
// validation, so only valid events cause anything, and outside the
// timeout, whose context then still carries the cause. The timeout is
// innermost, so each attempt gets its own deadline. With bus.Service.Use
// or router.AddMiddleware, the first middleware given is the outermost.
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
// A plain router nacks every handler error and most Pub/Subs redeliver at
// once: without Poison (or bus.Service, which acks permanent errors) a
// rejected message comes back forever. Unlike Watermill's PoisonQueue,
// Poison keeps the body byte for byte and writes the headers `bb dlq` reads;
// unlike Watermill's Retry, Retry leaves permanent errors alone and gives
// each attempt a fresh context.
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
//	}) // poison · dedup · guard · retry, with the service's poison and delay queues
//	svc.Use(validation.Middleware, middleware.Causation, wmmiddleware.Timeout(time.Minute))
//
//	b.DecoratePublisher(func(p message.Publisher) message.Publisher {
//		return middleware.NewRecordingPublisher(p, rec)
//	})
//	b.DecoratePublisher(tr.DecoratePublisher) // before cqrs.NewProcessor(b.Publisher(), ...)
//
// rel.Flush(ctx) after svc.Run returns writes the last dedup marks.
package middleware
