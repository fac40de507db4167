// Command command-processor is the Bloodbank service people deploy: it
// executes the commands of the registry (agent.thread.prompt, llm.prompt)
// from its service queue "{EXCHANGE_NAME}.{SERVICE_NAME}" (SERVICE_NAME
// defaults to command_processor here), publishes what they cause linked to
// them, and records the links in the correlation graph.
//
// Without RABBIT_URL it runs on the embedded in-process transport with an
// embedded correlation store, and says so (transport=embedded); with
// RABBIT_URL it uses RabbitMQ and the Redis of the REDIS_* settings.
//
// It serves GET /healthz and GET /readyz on HTTP_HOST:HTTP_PORT. On SIGINT
// or SIGTERM it stops taking deliveries, lets the commands in flight finish
// and ack (up to BB_DRAIN_TIMEOUT), writes the links still queued, and exits
// 0; a second signal kills it.
//
// Flags (and their environment variables):
//
//	--demo        (BB_DEMO=1)          publish one agent.thread.prompt once consuming,
//	                                   and log its response and correlation link
//	--echo-delay  (BB_ECHO_DELAY=20ms) the echo agent's simulated model latency
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus"
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
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "command-processor:", err)
		os.Exit(1)
	}
}

// shutdownTimeout bounds the HTTP shutdown and the last correlation writes.
const shutdownTimeout = 5 * time.Second

func run(ctx context.Context, args, environ []string, stderr io.Writer) error {
	opts, err := parseOptions(args, environ, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadSettings(environ, ".env")
	if err != nil {
		return err
	}
	logger, err := bus.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}

	b, err := bus.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	if b.Transport() == bus.TransportEmbedded {
		logger.Warn("transport=embedded: no RABBIT_URL is set, so events live in this process only and the correlation graph in an embedded Redis; set RABBIT_URL (and REDIS_*) to join the bus",
			slog.String("transport", b.Transport()))
	}

	graph, err := openCorrelation(cfg, b.Transport(), logger)
	if err != nil {
		return err
	}
	defer graph.close()
	rec, err := correlation.NewRecorder(graph.store, correlation.RecorderConfig{Batching: true, Logger: logger})
	if err != nil {
		return err
	}
	// Every event the processor publishes is linked once confirmed.
	b.DecoratePublisher(func(p message.Publisher) message.Publisher { return middleware.NewRecordingPublisher(p, rec) })

	reg, err := catalog.New()
	if err != nil {
		return err
	}
	proc, err := cqrs.NewProcessor(b.Publisher(), cqrs.ProcessorConfig{
		Registry: reg,
		Source:   cqrs.DefaultSource(cfg.ServiceName),
		Logger:   logger,
	})
	if err != nil {
		return err
	}
	if err := commands.Register(proc, commands.EchoAgent{Delay: opts.echoDelay}); err != nil {
		return err
	}
	for _, et := range reg.Events(domains.Filter{Kind: domains.Command}) {
		if !slices.Contains(proc.CommandTypes(), et.RoutingKey()) {
			logger.Warn("command type has no executor; its queue binding is not made", slog.String("type", et.RoutingKey()))
		}
	}

	svc, err := b.NewService(cfg.ServiceName)
	if err != nil {
		return err
	}
	// The retry and poison-queue middleware go here (svc.Use) once they
	// land; until then bus.Service logs and acks a permanent failure, and a
	// transient one is nacked and redelivered.
	if err := proc.AddHandlersToService(svc); err != nil {
		return err
	}

	health := &health{service: cfg.ServiceName, transport: b.Transport(), broker: b.Ready, redis: graph.ping, running: svc.Running()}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.HTTPHost, strconv.Itoa(cfg.HTTPPort)))
	if err != nil {
		return fmt.Errorf("cannot serve HTTP: %w", err)
	}
	srv := &http.Server{
		Handler:           health.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	httpErr := make(chan error, 1)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
			cancelRun()
		}
	}()
	logger.Info("command-processor starting", slog.String("transport", b.Transport()), slog.String("queue", svc.QueueName()),
		slog.Any("commands", proc.CommandTypes()), slog.String("http", ln.Addr().String()), slog.Any("settings", cfg))

	demoDone := make(chan struct{})
	if opts.demo {
		go func() {
			defer close(demoDone)
			runDemo(runCtx, b, graph.store, rec, svc.Running(), logger)
		}()
	} else {
		close(demoDone)
	}

	go func() {
		<-runCtx.Done()
		health.stopping.Store(true)
		logger.Info("shutting down: no new deliveries; in-flight commands finish and ack", slog.Duration("drain_timeout", cfg.DrainTimeout))
	}()
	runErr := svc.Run(runCtx)
	cancelRun()
	<-demoDone

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("http shutdown", slog.String("error", err.Error()))
	}
	if err := rec.Close(shutdownCtx); err != nil {
		logger.Warn("correlation links still queued were not written", slog.String("error", err.Error()))
	}
	s := proc.Stats()
	logger.Info("command-processor stopped", slog.Uint64("executed", s.Executed), slog.Uint64("failed", s.Failed),
		slog.Uint64("published", s.Published), slog.Uint64("facts", s.Facts), slog.Uint64("unknown", s.Unknown),
		slog.Uint64("rejected", s.Rejected), slog.Uint64("links_recorded", rec.Recorded()), slog.Uint64("links_failed", rec.Failed()))
	select {
	case err := <-httpErr:
		return fmt.Errorf("http server: %w", err)
	default:
	}
	return runErr
}
