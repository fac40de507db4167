package main

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/cmd/internal/console"
	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/cmd/internal/mcpserver"
	"github.com/33god/bloodbank-go/cmd/internal/telemetry"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/middleware"
)

// serveShutdownTimeout bounds the last correlation writes and the span
// flush once the gateway stopped.
const serveShutdownTimeout = 5 * time.Second

func (a *app) serveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP gateway alone: publish over HTTP, schemas, traces, health and metrics",
		Long: `Serve the HTTP gateway on HTTP_HOST:HTTP_PORT (default 0.0.0.0:8682) until
SIGINT or SIGTERM, then finish the requests in flight and exit 0. It is the
gateway command-processor serves, without executing any command: a drop-in for
the Python HTTP publisher.

  GET  /healthz                        {"ok": true, "service": SERVICE_NAME}
  GET  /readyz                         200, or 503 naming the broker or Redis
  POST /events/custom                  a whole v1 envelope, published under its event_type
  POST /events/agent/thread/prompt     an agent.thread.prompt payload, wrapped in an envelope
  POST /events/{routing_key}           a payload of that type, validated (422 naming each JSON path)
  GET  /schemas, /schemas/{name}       the catalogue: JSON Schema and example
  GET  /asyncapi.json                  the catalogue as an AsyncAPI 3.0 document (bb asyncapi)
  GET  /events/{event_id}/correlation  the event's correlation trace, from Redis
  GET  /metrics                        Prometheus counters
  GET  /ui/                            the web console: catalogue, causal graphs, poison queues, live tail
  GET  /events/stream?pattern=P        the live tail as Server-Sent Events
  POST, GET, DELETE /mcp               the MCP server of 'bb mcp', over streamable HTTP
                                       (list_parked and replay_parked only with HTTP_TOKEN)

With HTTP_TOKEN set, every POST, and every request to /mcp, needs
"Authorization: Bearer <token>" (401 otherwise). Links of published events with correlation_ids are recorded in
the Redis of REDIS_* as the Python publisher records them; a Redis that is
down fails no publish. BB_TRACING=stdout writes a span per publish to stdout.
Needs RABBIT_URL (exit 2 without it). An HTTP address that cannot be bound
is exit 1.`,
		Example: `  bb serve
  HTTP_PORT=9000 HTTP_TOKEN=s3cret bb serve
  curl -s -XPOST localhost:8682/events/agent/thread/prompt -H 'Content-Type: application/json' \
    -d '{"provider": "anthropic", "prompt": "hello"}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runServe(cmd.Context()) },
	}
}

func (a *app) runServe(ctx context.Context) error {
	cfg, logger, err := a.setup()
	if err != nil {
		return err
	}
	tp, stopTracing, err := telemetry.NewTracerProvider(cfg.Telemetry, cfg.Bus.ServiceName, a.stdout)
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), serveShutdownTimeout)
		defer cancel()
		_ = stopTracing(sctx)
	}()

	b, err := a.openBus(ctx, cfg.Bus, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	client, store, err := openStore(cfg, logger, 0)
	if err != nil {
		return err
	}
	defer client.Close()
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{Batching: true, Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), serveShutdownTimeout)
		defer cancel()
		if err := rec.Close(sctx); err != nil {
			logger.Warn("correlation links still queued were not written", slog.String("error", err.Error()))
		}
	}()
	events, err := catalog.New()
	if err != nil {
		return err
	}
	metrics, err := gateway.NewMetrics(gateway.MetricsConfig{
		Events:                  events,
		PublisherStats:          b.PublisherStats,
		CorrelationWritesFailed: func() float64 { return float64(rec.Failed()) },
		Logger:                  logger,
	})
	if err != nil {
		return err
	}
	tr := middleware.NewTracing(middleware.TracingConfig{TracerProvider: tp, Destination: cfg.Bus.ExchangeName})
	b.DecoratePublisher(func(p message.Publisher) message.Publisher { return middleware.NewRecordingPublisher(p, rec) })
	b.DecoratePublisher(tr.DecoratePublisher)
	b.DecoratePublisher(metrics.DecoratePublisher)

	agents, err := mcpserver.New(mcpserver.Config{Admin: cfg.HTTP.Token != "", ServiceName: cfg.Bus.ServiceName,
		StrictTypes: cfg.Bus.StrictTypes, Logger: logger}, mcpserver.Deps{Bus: b, Events: events, Correlation: store})
	if err != nil {
		return err
	}
	defer agents.Close()
	gw, err := gateway.New(gateway.Config{ServiceName: cfg.Bus.ServiceName, StrictTypes: cfg.Bus.StrictTypes, Token: cfg.HTTP.Token,
		ExchangeName: cfg.Bus.ExchangeName, BrokerURL: cfg.Bus.RabbitURL, Logger: logger}, gateway.Deps{
		Publisher:    b,
		Events:       events,
		Correlation:  store,
		Checks:       []gateway.Check{gateway.BrokerCheck(b), gateway.RedisCheck(client)},
		Metrics:      metrics,
		MCP:          agents.HTTPHandler(),
		PoisonQueues: console.PoisonQueues(b),
		Tail:         b.TemporarySubscriber,
	})
	if err != nil {
		return err
	}
	addr := cfg.HTTP.Addr()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return usageErrorf("cannot serve HTTP on %s: %v (pick a free address with HTTP_HOST and HTTP_PORT)", addr, err)
	}
	logger.Info("serve: gateway listening", slog.String("addr", ln.Addr().String()), slog.String("service", cfg.Bus.ServiceName),
		slog.String("exchange", cfg.Bus.ExchangeName), slog.Bool("token", cfg.HTTP.Token != ""), slog.String("tracing", cfg.Telemetry.Tracing))
	if err := gw.Serve(ctx, ln); err != nil {
		if ctx.Err() != nil {
			// Stopped by a signal, but requests outlived the shutdown bound.
			logger.Warn("serve: shutdown", slog.String("error", err.Error()))
			return nil
		}
		return infraErrorf("%v", err)
	}
	logger.Info("serve: stopped")
	return nil
}
