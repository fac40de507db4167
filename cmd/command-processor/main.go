// Command command-processor is the Bloodbank service people deploy: it
// executes the commands of the registry (agent.thread.prompt; llm.prompt is
// a fact, as in Python, answered by whichever service runs the model)
// from its service queue "{EXCHANGE_NAME}.{SERVICE_NAME}" (SERVICE_NAME
// defaults to command_processor here), publishes what they cause linked to
// them, and records the links in the correlation graph.
//
// Without RABBIT_URL it runs on the embedded in-process transport with an
// embedded Redis, and says so (transport=embedded); with RABBIT_URL it uses
// RabbitMQ and the Redis of the REDIS_* settings.
//
// Every delivery goes through the architecture's middleware, outermost
// first (see stack.go):
//
//	recover · metrics · trace · poison · dedup · retry · validate · correlation · timeout
//
// A transient failure is retried in-process with backoff, then through the
// delay queues "{queue}.retry.{1s,10s,1m}"; a permanent one (malformed,
// invalid) and a retry given up are parked with their reason in
// "{queue}.poison", where `bb dlq` finds and replays them. An event already
// handled (same event id, within 24 h) is acked without running again.
//
// It serves the HTTP gateway on HTTP_HOST:HTTP_PORT (package
// cmd/internal/gateway): the publish endpoints of the Python service, the
// schemas, the correlation trace, /healthz, /readyz (broker, Redis, and
// consuming) and /metrics. With BB_TRACING=stdout it writes OpenTelemetry
// spans (publish, handle, execute) to stdout.
//
// With BB_EVENT_LOG=on it declares the event log, the stream queue
// "{EXCHANGE_NAME}.log" bound to "#", kept BB_EVENT_LOG_MAX_AGE (default
// 7D) and up to BB_EVENT_LOG_MAX_BYTES (default 1 GB), which bb log reads.
//
// On SIGINT or SIGTERM /readyz turns 503, it stops taking deliveries, lets
// the commands in flight finish and ack (up to BB_DRAIN_TIMEOUT), stops the
// HTTP server once its requests finished, writes the links still queued,
// flushes the spans, and exits 0; a second signal kills it.
//
// Flags (and their environment variables):
//
//	--demo             (BB_DEMO=1)               publish one agent.thread.prompt once consuming,
//	                                             and log its response and correlation link
//	--echo-delay       (BB_ECHO_DELAY=20ms)      the echo agent's simulated model latency
//	--command-timeout  (BB_COMMAND_TIMEOUT=1m)   bound on one attempt at a command
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/cmd/internal/console"
	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/cmd/internal/mcpserver"
	"github.com/33god/bloodbank-go/cmd/internal/telemetry"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/cqrs/commands"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/middleware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process
	}()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "command-processor:", err)
		os.Exit(1)
	}
}

// shutdownTimeout bounds the last correlation writes and the span flush.
const shutdownTimeout = 5 * time.Second

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fl, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	conf, err := loadSettings(environ, ".env")
	if err != nil {
		return err
	}
	fl.apply(&conf.Own)
	logger, err := telemetry.NewLogger(stderr, conf.Telemetry)
	if err != nil {
		return err
	}
	telemetry.RouteRedisLogs(logger)

	tp, stopTracing, err := telemetry.NewTracerProvider(conf.Telemetry, conf.Bus.ServiceName, stdout)
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: after the bus closed, the last spans
	// are flushed.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			logger.Warn("spans not exported", slog.String("error", err.Error()))
		}
	}()

	b, err := bus.Open(ctx, conf.Bus, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	if b.Transport() == bus.TransportEmbedded {
		logger.Warn("transport=embedded: no RABBIT_URL is set, so events live in this process only and the correlation graph in an embedded Redis; set RABBIT_URL (and REDIS_*) to join the bus",
			slog.String("transport", b.Transport()))
	}

	if logCfg, on := conf.Own.eventLog(); on {
		if err := declareEventLog(ctx, b, logCfg, logger); err != nil {
			return err
		}
	}

	graph, err := openCorrelation(conf.Redis, b.Transport(), logger)
	if err != nil {
		return err
	}
	defer graph.close()
	rec, err := correlation.NewRecorder(graph.store, correlation.RecorderConfig{Batching: true, Logger: logger})
	if err != nil {
		return err
	}
	reg, err := catalog.New()
	if err != nil {
		return err
	}
	tr := middleware.NewTracing(middleware.TracingConfig{TracerProvider: tp, Destination: conf.Bus.ExchangeName})

	svc, err := b.NewService(conf.Bus.ServiceName)
	if err != nil {
		return err
	}
	st, err := installStack(ctx, b, svc, stackConfig{
		events:         reg,
		tracing:        tr,
		dedup:          middleware.NewRedisDedupStore(graph.client, ""),
		guardLinks:     linkReader(graph.store),
		guardCounter:   middleware.NewRedisDescendantCounter(graph.client, "", 0),
		recorder:       rec,
		commandTimeout: conf.Own.CommandTimeout,
		maxRootTokens:  conf.Own.MaxRootTokens,
		costs:          graph.costs,
		strictTypes:    conf.Bus.StrictTypes,
		logger:         logger,
	})
	if err != nil {
		return err
	}

	// Every event the processor publishes is linked once confirmed, traced,
	// and timed; the command processor publishes through this publisher, so
	// it is decorated before the processor is built.
	b.DecoratePublisher(func(p message.Publisher) message.Publisher { return middleware.NewRecordingPublisher(p, rec) })
	b.DecoratePublisher(tr.DecoratePublisher)
	b.DecoratePublisher(st.metrics.DecoratePublisher)

	proc, err := cqrs.NewProcessor(b.Publisher(), cqrs.ProcessorConfig{
		Registry:   reg,
		Source:     cqrs.DefaultSource(conf.Bus.ServiceName),
		Decorators: []cqrs.Decorator{traceCommands(tr)},
		Logger:     logger,
	})
	if err != nil {
		return err
	}
	if err := commands.Register(proc, commands.EchoAgent{Delay: conf.Own.EchoDelay}); err != nil {
		return err
	}
	for _, et := range reg.Events(domains.Filter{Kind: domains.Command}) {
		if !slices.Contains(proc.CommandTypes(), et.RoutingKey()) {
			logger.Warn("command type has no executor; its queue binding is not made", slog.String("type", et.RoutingKey()))
		}
	}
	if err := proc.AddHandlersToService(svc); err != nil {
		return err
	}

	// Admin tools over HTTP only behind the token: replaying parked
	// messages writes to a service's queue.
	agents, err := mcpserver.New(mcpserver.Config{Admin: conf.HTTP.Token != "", ServiceName: conf.Bus.ServiceName,
		StrictTypes: conf.Bus.StrictTypes, Logger: logger}, mcpserver.Deps{Bus: b, Events: reg, Correlation: graph.store})
	if err != nil {
		return err
	}
	defer agents.Close()

	var stopping atomic.Bool
	gw, err := gateway.New(gateway.Config{ServiceName: conf.Bus.ServiceName, StrictTypes: conf.Bus.StrictTypes, Token: conf.HTTP.Token,
		ExchangeName: conf.Bus.ExchangeName, BrokerURL: conf.Bus.RabbitURL, Logger: logger}, gateway.Deps{
		Publisher:    b,
		Events:       reg,
		Correlation:  graph.store,
		Checks:       []gateway.Check{gateway.BrokerCheck(b), gateway.RedisCheck(graph.client), consumingCheck(svc.Running(), &stopping)},
		Metrics:      st.metrics,
		MCP:          agents.HTTPHandler(),
		PoisonQueues: console.PoisonQueues(b),
		Tail:         b.TemporarySubscriber,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", conf.HTTP.Addr())
	if err != nil {
		return fmt.Errorf("cannot serve HTTP: %w", err)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	// The gateway outlives the service's drain: probes keep answering
	// (/readyz says it is shutting down) and requests in flight finish.
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHTTP()
	httpDone := make(chan error, 1)
	go func() {
		err := gw.Serve(httpCtx, ln)
		if httpCtx.Err() == nil {
			cancelRun() // the server failed on its own: stop the service too
		}
		httpDone <- err
	}()
	logger.Info("command-processor starting", slog.String("transport", b.Transport()), slog.String("queue", svc.QueueName()),
		slog.String("poison_queue", st.reliability.PoisonQueue), slog.Any("commands", proc.CommandTypes()),
		slog.String("http", ln.Addr().String()), slog.Any("settings", conf))

	demoDone := make(chan struct{})
	if conf.Own.Demo {
		go func() {
			defer close(demoDone)
			runDemo(runCtx, b, graph.store, rec, svc.Running(), logger)
		}()
	} else {
		close(demoDone)
	}

	go func() {
		<-runCtx.Done()
		stopping.Store(true)
		logger.Info("shutting down: no new deliveries; in-flight commands finish and ack", slog.Duration("drain_timeout", conf.Bus.DrainTimeout))
	}()
	runErr := svc.Run(runCtx)
	cancelRun()
	<-demoDone

	stopHTTP()
	httpErr := <-httpDone
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := rec.Close(shutdownCtx); err != nil {
		logger.Warn("correlation links still queued were not written", slog.String("error", err.Error()))
	}
	if err := st.reliability.Flush(shutdownCtx); err != nil {
		logger.Warn("deduplication marks still queued were not written", slog.String("error", err.Error()))
	}
	s, r := proc.Stats(), st.reliability.Stats()
	logger.Info("command-processor stopped", slog.Uint64("executed", s.Executed), slog.Uint64("failed", s.Failed),
		slog.Uint64("published", s.Published), slog.Uint64("facts", s.Facts), slog.Uint64("unknown", s.Unknown),
		slog.Uint64("rejected", s.Rejected), slog.Uint64("retried", r.Retry.Retried), slog.Uint64("redelivered", r.Retry.Redelivered),
		slog.Uint64("parked", r.Poison.Parked), slog.Uint64("deduplicated", r.Dedup.Duplicates),
		slog.Uint64("links_recorded", rec.Recorded()), slog.Uint64("links_failed", rec.Failed()))
	if runErr != nil {
		return runErr
	}
	if httpErr != nil {
		if ctx.Err() == nil {
			return httpErr // it failed before any signal: the cause of the stop
		}
		logger.Warn("http shutdown", slog.String("error", httpErr.Error()))
	}
	return nil
}

// consumingCheck is the /readyz check of the service itself: ready once
// every handler consumes, and no longer once a shutdown began, so that an
// orchestrator sends no traffic to a process that is draining.
func consumingCheck(running <-chan struct{}, stopping *atomic.Bool) gateway.Check {
	return gateway.Check{Name: "consuming", Func: func(context.Context) error {
		if stopping.Load() {
			return errors.New("shutting down")
		}
		select {
		case <-running:
			return nil
		default:
			return errors.New("not consuming yet")
		}
	}}
}

// declareEventLog declares the event log, so that the broker keeps every
// event of the exchange for bb log and bb replay. The embedded transport
// keeps no history: the setting is ignored there, with a warning.
func declareEventLog(ctx context.Context, b *bus.Bus, cfg amqp.EventLogConfig, logger *slog.Logger) error {
	exchange := b.Config().ExchangeName
	if b.Transport() == bus.TransportEmbedded {
		logger.Warn("BB_EVENT_LOG=on is ignored on the embedded transport: set RABBIT_URL to keep an event log")
		return nil
	}
	err := b.WithChannel(ctx, func(ch *amqp091.Channel) error { return amqp.DeclareEventLog(ch, exchange, cfg) })
	if err != nil {
		return fmt.Errorf("%w (an existing log declared with another BB_EVENT_LOG_MAX_AGE or BB_EVENT_LOG_MAX_BYTES must be deleted, or those settings matched)", err)
	}
	logger.Info("event log declared", slog.String("queue", amqp.EventLogQueue(exchange)),
		slog.String("max_age", cfg.MaxAge), slog.Int64("max_bytes", cfg.MaxBytes))
	return nil
}
