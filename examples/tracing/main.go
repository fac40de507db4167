// Command tracing shows one OpenTelemetry trace across the bus: a prompt is
// published, a command processor (package cqrs, with the reference echo
// agent) executes it and publishes a response, and the three spans (publish
// prompt, execute prompt, publish response) share one trace, printed by the
// stdout exporter. The trace context
// travels in the messages' traceparent header, so on RabbitMQ it crosses
// the broker, and any service that copies headers onto what it publishes
// (Python services included) keeps the chain in one trace.
//
// BB_TRACING chooses the exporter: "stdout" (this example's default) or
// "off". A Bloodbank binary reads the same variable, with "off" as its
// default; newTracerProvider is the code it needs.
//
// Without RABBIT_URL it runs on the embedded in-process transport; with
// RABBIT_URL on the real bus.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/google/uuid"
	"github.com/lmittmann/tint"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/term"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/cqrs/commands"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/middleware"
)

// serviceName names the demo's service queue,
// bloodbank.events.v1.tracing_demo, which the demo deletes when it is done
// on RabbitMQ. It is not "command_processor", so that the demo never takes
// over the queue of a real command processor on the bus.
const serviceName = "tracing_demo"

func main() {
	mode, ok := os.LookupEnv("BB_TRACING")
	if !ok {
		mode = "stdout" // showing the trace is this example's point
	}
	// Readable lines on stderr, colored on a terminal.
	logger := slog.New(tint.NewTextHandler(os.Stderr, &tint.Options{NoColor: !term.IsTerminal(int(os.Stderr.Fd()))}))
	cfg, err := bus.LoadConfig(os.Environ(), ".env")
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = run(ctx, cfg, mode, logger, os.Stdout)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracing:", err)
		os.Exit(1)
	}
}

// newTracerProvider builds the TracerProvider that BB_TRACING asks for, and
// the function that flushes and stops it (call it last, after the bus is
// closed, so that the last spans are exported):
//
//   - "" or "off": a no-op provider; tracing costs next to nothing;
//   - "stdout": the OpenTelemetry SDK, exporting each span as JSON to w.
//
// An OTLP exporter (otlptracegrpc) for a collector slots in here the same way.
func newTracerProvider(mode, service string, w io.Writer, processors ...sdktrace.SpanProcessor) (trace.TracerProvider, func(context.Context) error, error) {
	switch strings.ToLower(mode) {
	case "", "off":
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	case "stdout":
		exp, err := stdouttrace.New(stdouttrace.WithWriter(w), stdouttrace.WithPrettyPrint())
		if err != nil {
			return nil, nil, err
		}
		opts := []sdktrace.TracerProviderOption{
			// Batching keeps exporting off the publish and handle paths;
			// Shutdown flushes what is left.
			sdktrace.WithBatcher(exp),
			// service.name tells the services of one trace apart.
			sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))),
		}
		for _, p := range processors {
			opts = append(opts, sdktrace.WithSpanProcessor(p))
		}
		tp := sdktrace.NewTracerProvider(opts...)
		return tp, tp.Shutdown, nil
	}
	return nil, nil, fmt.Errorf("BB_TRACING=%q: want off or stdout", mode)
}

func run(ctx context.Context, cfg bus.Config, mode string, logger *slog.Logger, out io.Writer) error {
	// The summary printed after the exporter's output: the same spans as a
	// tree. A production binary needs only the exporter.
	summary := &spanTree{}
	tp, shutdown, err := newTracerProvider(mode, serviceName, out, summary)
	if err != nil {
		return err
	}
	defer func() { _ = shutdown(context.Background()) }()

	b, err := bus.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	// Tracing on the bus: every publish gets a producer span and writes
	// its context in the traceparent header; every executed command gets a
	// consumer span, child of its producer's (traceCommands below).
	tr := middleware.NewTracing(middleware.TracingConfig{TracerProvider: tp, Destination: cfg.ExchangeName})
	b.DecoratePublisher(tr.DecoratePublisher)

	// The command processor, as cmd/command-processor builds it, plus the
	// decorator that gives each execution its span. It publishes through
	// b.Publisher(), which must be decorated first.
	reg, err := catalog.New()
	if err != nil {
		return err
	}
	proc, err := cqrs.NewProcessor(b.Publisher(), cqrs.ProcessorConfig{
		Registry:   reg,
		Source:     cqrs.DefaultSource(serviceName),
		Decorators: []cqrs.Decorator{traceCommands(tr)},
		Logger:     logger,
	})
	if err != nil {
		return err
	}
	if err := commands.Register(proc, commands.EchoAgent{}); err != nil {
		return err
	}
	svc, err := b.NewService(serviceName)
	if err != nil {
		return err
	}
	// No svc.Use(tr.Middleware) here: the execute span is then the
	// delivery's consumer span, and the trace has three spans. With it, a
	// handle span comes between publish and execute (four spans), and
	// deliveries that never execute (invalid, facts) get a span too.
	if err := proc.AddHandlersToService(svc); err != nil {
		return err
	}

	// A watcher on the responses, without tracing: it only tells the demo
	// when to stop.
	responses, stopWatching, err := watch(ctx, b, thread.RoutingKeyResponse)
	if err != nil {
		return err
	}
	defer stopWatching()

	svcCtx, stopService := context.WithCancel(ctx)
	defer stopService()
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.Run(svcCtx) }()
	select {
	case <-svc.Running():
	case err := <-svcDone:
		return fmt.Errorf("service stopped before it ran: %w", err)
	}

	prompt, err := envelope.New(thread.RoutingKeyPrompt, thread.Prompt{Provider: "echo", Prompt: "Summarise the standup"})
	if err != nil {
		return err
	}
	// No span in this context: the publish span is the trace's root. A
	// producer that is itself traced (an HTTP handler) passes its context.
	if err := b.Publish(ctx, prompt); err != nil {
		return err
	}
	for answered := false; !answered; {
		select {
		case env := <-responses:
			answered = len(env.CorrelationIDs) == 1 && env.CorrelationIDs[0] == prompt.EventID
		case err := <-svcDone:
			return fmt.Errorf("service stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	stopService()
	if err := <-svcDone; err != nil {
		return err
	}
	stopWatching()
	if err := deleteQueue(ctx, b, svc.QueueName()); err != nil {
		return err
	}
	// Flush: the exporter prints the spans now.
	if err := shutdown(ctx); err != nil {
		return err
	}
	summary.print(out, mode)
	return nil
}

// traceCommands is the cqrs decorator that runs every command inside an
// "execute <command>" span (middleware.Tracing.Execute). What the command
// publishes with the context it gets is the span's child.
func traceCommands(tr *middleware.Tracing) cqrs.Decorator {
	return func(next cqrs.HandlerFunc) cqrs.HandlerFunc {
		return func(ctx context.Context, ex *cqrs.Execution) error {
			return tr.Execute(ctx, middleware.ExecuteParams{Command: ex.Context.EventType, Message: ex.Message},
				func(ctx context.Context) error { return next(ctx, ex) })
		}
	}
}

// deleteQueue deletes the demo's durable service queue on RabbitMQ, so
// that the demo leaves nothing bound to the exchange. The embedded broker
// goes away with the process.
func deleteQueue(ctx context.Context, b *bus.Bus, queue string) error {
	if b.Transport() != bus.TransportAMQP {
		return nil
	}
	return b.WithChannel(ctx, func(ch *amqp091.Channel) error {
		_, err := ch.QueueDelete(queue, false, false, false)
		return err
	})
}

// watch subscribes a temporary queue to pattern and sends the envelopes it
// receives on the returned channel.
func watch(ctx context.Context, b *bus.Bus, pattern string) (<-chan envelope.Envelope, func(), error) {
	queue := "tracing-demo." + uuid.NewString()
	sub, err := b.TemporarySubscriber(transport.SubscriberConfig{QueueName: func(string) string { return queue }})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	msgs, err := sub.Subscribe(ctx, pattern)
	if err != nil {
		cancel()
		_ = sub.Close()
		return nil, nil, err
	}
	envs := make(chan envelope.Envelope)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range msgs {
			env, err := envelope.FromMessage(msg)
			msg.Ack()
			if err != nil {
				continue
			}
			select {
			case envs <- env:
			case <-ctx.Done():
			}
		}
	}()
	var once sync.Once
	return envs, func() {
		once.Do(func() {
			cancel()
			_ = sub.Close()
			<-done
		})
	}, nil
}

// spanTree is a span processor that keeps the ended spans, to print them
// as a tree.
type spanTree struct {
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
}

func (s *spanTree) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (s *spanTree) OnEnd(span sdktrace.ReadOnlySpan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans = append(s.spans, span)
}
func (s *spanTree) Shutdown(context.Context) error   { return nil }
func (s *spanTree) ForceFlush(context.Context) error { return nil }

// print writes the spans as a tree per trace, each with its event id: the
// key to the same events in the correlation graph (`bb trace <id>`).
func (s *spanTree) print(w io.Writer, mode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.spans) == 0 {
		fmt.Fprintf(w, "no spans: BB_TRACING=%s\n", mode)
		return
	}
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	known := map[trace.SpanID]bool{}
	for _, sp := range s.spans {
		known[sp.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, sp := range s.spans {
		if p := sp.Parent().SpanID(); sp.Parent().IsValid() && known[p] {
			children[p] = append(children[p], sp)
		} else {
			roots = append(roots, sp)
		}
	}
	var walk func(sp sdktrace.ReadOnlySpan, depth int)
	walk = func(sp sdktrace.ReadOnlySpan, depth int) {
		var eventID string
		for _, kv := range sp.Attributes() {
			if kv.Key == middleware.AttrEventID {
				eventID = kv.Value.AsString()
			}
		}
		fmt.Fprintf(w, "%s%s (%s) event %s\n", strings.Repeat("  ", depth+1), sp.Name(), sp.SpanKind(), eventID)
		for _, c := range children[sp.SpanContext().SpanID()] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		fmt.Fprintf(w, "trace %s:\n", r.SpanContext().TraceID())
		walk(r, 0)
	}
}
