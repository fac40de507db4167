// Package gateway is Bloodbank's HTTP surface: the publish endpoints of the
// Python service (wire-contract section 8) plus what operators need around
// them (schemas, the correlation trace, health, readiness, Prometheus
// metrics). command-processor and `bb serve` serve it; nothing else in the
// module depends on it.
//
// # Endpoints
//
//	GET  /healthz                      {"ok": true, "service": "<service name>"}, as Python answers
//	GET  /readyz                       200, or 503 naming each failing Check ("broker", "redis")
//	POST /events/custom                body: a whole v1 envelope, published under its event_type
//	POST /events/agent/thread/prompt   body: an agent.thread.prompt payload, wrapped by envelope.NewHTTP
//	POST /events/{routing_key}         body: a payload of that routing key, validated, then wrapped likewise
//	GET  /schemas                      the registered event types (?domain=agent&kind=command filter them)
//	GET  /schemas/{name}               one type: JSON Schema and example (name: routing key, template or Go name)
//	GET  /asyncapi.json                the catalogue as an AsyncAPI 3.0 document (package asyncapi)
//	GET  /events/{event_id}/correlation  the correlation debug dump (correlation.Dump), with the
//	                                     cost totals of the event's root when Deps.Correlation is a CostTracer
//	GET  /metrics                      Prometheus text format
//	GET  /ui/...                       the web console (package console): catalogue, causal graph, poison queues
//	GET  /events/stream?pattern=P      the live tail, as Server-Sent Events
//	POST, GET, DELETE /mcp             the MCP server (streamable HTTP), when Deps.MCP is set
//
// A publish answers 200 as the Python endpoints do: POST
// /events/agent/thread/prompt with the envelope it published, the others
// with {"status": "published", "event_id": "<id>"}. Every error is a JSON object {"error": "<what to do>",
// ...details}; the status says who must act:
//
//	400  the body is not JSON, or not a valid envelope (event_type missing…), or an id is not a UUID
//	401  HTTP_TOKEN is set and a POST lacks "Authorization: Bearer <token>"
//	404  no such endpoint, or no event type under the routing key / name in the path
//	405  the endpoint exists for another method (the Allow header lists them)
//	413  the body is larger than Config.MaxBodyBytes (default 1 MiB)
//	415  a POST whose Content-Type is not JSON
//	422  the payload does not match its schema: "problems" lists {path, message}
//	501  no correlation store was given (Deps.Correlation)
//	503  the publish failed (Retry-After header, "retry_after_seconds", "hint"),
//	     Redis is unreachable for a correlation read, or /readyz fails
//
// An unknown routing key on POST /events/{routing_key} is a 404, not a 422:
// the path names a resource, the event type, that does not exist here. To
// publish an event type this catalogue does not know (a Python producer may
// be ahead of it), POST the whole envelope to /events/custom, which, like
// Python, does not validate the payload.
//
// # Wire compatibility
//
// /events/custom decodes the body with envelope.Decode and publishes the
// envelope it read. The body on the bus is the canonical v1 form
// (Envelope.MarshalJSON): same fields and values, payload bytes unchanged
// but for whitespace, timestamp rewritten in UTC with a "Z", and top-level
// fields outside the v1 envelope dropped. A body a Python producer wrote (the
// example of wire-contract section 3) goes out byte for byte. Unlike Python,
// a body that no consumer could act on (no event_id, a bad timestamp…) is
// refused with 400 instead of being published.
//
// The payload endpoints publish the payload as received (compacted), not
// re-encoded from a Go value, so integers beyond 2^53 and unknown fields
// survive; Python consumers apply their defaults to absent fields. The
// source host is the TCP peer's address (the host part of
// http.Request.RemoteAddr); behind a proxy that is the proxy.
//
// A publish is not abandoned when the client disconnects: it runs to its
// end (bounded by Config.PublishTimeout), so whether an event was published
// never depends on the client's patience.
//
// # Authentication
//
// With Config.Token set (HTTP_TOKEN), every POST must carry
// "Authorization: Bearer <token>". The comparison is constant-time (SHA-256
// of both sides, then crypto/subtle), and the token is never logged. GET
// endpoints stay open: health and metrics are scraped without credentials.
// /mcp is the exception: every method there needs the token, since an MCP
// session publishes and reads the bus.
//
// # Metrics
//
// Metrics owns a prometheus.Registry served on /metrics. It exports
//
//	bloodbank_published_total, bloodbank_confirmed_total,
//	bloodbank_unroutable_total, bloodbank_publish_failed_total
//	        read at scrape time from MetricsConfig.PublisherStats
//	        (bus.Bus.PublisherStats), so nothing is counted twice
//	bloodbank_consumed_total, bloodbank_retried_total, bloodbank_parked_total,
//	bloodbank_deduplicated_total, bloodbank_correlation_writes_failed_total
//	        read at scrape time from the MetricsConfig func() float64 sources,
//	        which the middleware and correlation packages' counters plug into
//	        without this package importing them; a nil source is not
//	        exported, except consumed, which then counts the messages
//	        Metrics.Middleware saw
//	bloodbank_handler_duration_seconds{routing_key, handler}
//	        observed by Metrics.Middleware
//	bloodbank_http_requests_total{route, code}
//	        one per request this gateway answered
//	bloodbank_watermill_*   Watermill's components/metrics (handlers,
//	        publishers, subscribers) once added with AddRouterMetrics and
//	        DecoratePublisher
//
// plus the Go runtime and process collectors. Labels are bounded: a
// routing_key label is a key of the registry (a template's enumerated key,
// or the template itself) or "other"; handler names are chosen by code;
// routes are the gateway's patterns or "other".
//
// # Wiring
//
//	reg, _ := catalog.New()
//	m, _ := gateway.NewMetrics(gateway.MetricsConfig{
//		Events:                  reg,
//		PublisherStats:          b.PublisherStats,
//		Retried:                 func() float64 { return float64(rel.Stats().Retry.Retried) },
//		Parked:                  func() float64 { return float64(rel.Stats().Poison.Parked) },
//		Deduplicated:            func() float64 { return float64(rel.Stats().Dedup.Duplicates) },
//		CorrelationWritesFailed: func() float64 { return float64(rec.Failed()) },
//	})
//	b.DecoratePublisher(m.DecoratePublisher) // Watermill publish metrics
//	m.AddRouterMetrics(svc.Router())          // before svc.Run: Watermill metrics + m.Middleware
//
//	gw, _ := gateway.New(gateway.Config{ServiceName: cfg.ServiceName, Token: web.Token, Logger: logger},
//		gateway.Deps{
//			Publisher:   b,
//			Events:      reg,
//			Correlation: store,
//			Checks:      []gateway.Check{gateway.BrokerCheck(b), gateway.RedisCheck(redisClient)},
//			Metrics:     m,
//		})
//	go gw.ListenAndServe(ctx, web.Addr()) // web is a Settings: HTTP_HOST, HTTP_PORT, HTTP_TOKEN
//
// ListenAndServe returns once ctx is done and in-flight requests finished
// (or Config.ShutdownTimeout passed).
package gateway
