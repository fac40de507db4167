package middleware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
)

// The W3C trace-context keys, in message metadata and so in AMQP headers: a
// service that copies the headers of what it consumes onto what it
// publishes (Python services included) carries the trace along unknowingly.
const (
	HeaderTraceParent = "traceparent" // e.g. "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	HeaderTraceState  = "tracestate"  // vendor data, absent when empty
)

// Span attributes of Bloodbank's own, next to the OpenTelemetry messaging
// semantic conventions.
const (
	AttrEventID        = attribute.Key("bloodbank.event_id")        // the key `bb trace <id>` reads
	AttrEventType      = attribute.Key("bloodbank.event_type")      // the envelope's event_type
	AttrCorrelationIDs = attribute.Key("bloodbank.correlation_ids") // when the event has any
	AttrHandler        = attribute.Key("bloodbank.handler")         // the Watermill handler
	AttrCommand        = attribute.Key("bloodbank.command")         // the routing key of an execute span's command
)

// TracerName is the instrumentation scope of the spans Tracing starts.
const TracerName = "github.com/33god/bloodbank-go/middleware"

// TracingConfig configures Tracing. The zero value is usable.
type TracingConfig struct {
	// TracerProvider starts the spans. Optional; default
	// otel.GetTracerProvider(), which does nothing until a binary installs
	// one with otel.SetTracerProvider.
	TracerProvider trace.TracerProvider
	// Propagator moves the trace context in message metadata. Optional;
	// default propagation.TraceContext{} (W3C), not the global propagator,
	// whose default propagates nothing: the headers are a wire contract.
	Propagator propagation.TextMapPropagator
	// System is the messaging.system attribute. Optional; default
	// "rabbitmq". A plain Watermill app on another Pub/Sub names its own.
	System string
	// Destination is the messaging.destination.name attribute, the exchange.
	// Optional; default envelope.DefaultExchange (use bus.Config.ExchangeName).
	Destination string
}

// Tracing starts spans "publish <routing key>" (DecoratePublisher,
// PublisherDecorator), "handle <routing key>" (Middleware) and "execute
// <command>" (Execute), each with the event id (AttrEventID), so a trace and
// `bb trace <id>` meet. Without a TracerProvider every span is a no-op, but
// a delivery's traceparent still reaches what its handler publishes, as in
// a Python service. The binaries turn spans on with BB_TRACING=stdout
// (examples/tracing). Attributes are set once a span has started, and only
// on a span that records: a service with tracing off builds none per
// message (a sampler therefore sees a span's name and kind, not its
// attributes). Safe for concurrent use.
type Tracing struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	common     []attribute.KeyValue
}

// NewTracing returns the tracing middleware and publisher decorator.
func NewTracing(cfg TracingConfig) *Tracing {
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.TraceContext{}
	}
	return &Tracing{
		tracer:     cfg.TracerProvider.Tracer(TracerName),
		propagator: cfg.Propagator,
		common: []attribute.KeyValue{
			semconv.MessagingSystemKey.String(cmp.Or(cfg.System, "rabbitmq")),
			semconv.MessagingDestinationName(cmp.Or(cfg.Destination, envelope.DefaultExchange)),
		},
	}
}

// MetadataCarrier lets an OpenTelemetry propagator read and write message
// metadata, for code that moves trace context by hand:
//
//	propagation.TraceContext{}.Inject(ctx, middleware.MetadataCarrier(msg.Metadata))
type MetadataCarrier message.Metadata

var _ propagation.TextMapCarrier = MetadataCarrier(nil)

// Get returns the value of key, "" when absent.
func (c MetadataCarrier) Get(key string) string { return c[key] }

// Set sets key to value.
func (c MetadataCarrier) Set(key, value string) { c[key] = value }

// Keys lists the keys present.
func (c MetadataCarrier) Keys() []string { return slices.Collect(maps.Keys(c)) }

// DecoratePublisher wraps pub so that every message it publishes gets a
// producer span and carries its context, for bus.Bus.DecoratePublisher.
func (t *Tracing) DecoratePublisher(pub message.Publisher) message.Publisher {
	return &tracingPublisher{pub: pub, t: t}
}

// PublisherDecorator is DecoratePublisher for a Watermill router's
// AddPublisherDecorators, which traces the messages its handlers return.
func (t *Tracing) PublisherDecorator() message.PublisherDecorator {
	return func(pub message.Publisher) (message.Publisher, error) {
		return t.DecoratePublisher(pub), nil
	}
}

type tracingPublisher struct {
	pub message.Publisher
	t   *Tracing
}

// Publish starts a producer span per message, child of the span in its
// context or else of the trace context it carries (a replayed message keeps
// its trace), ended once the decorated publisher returned.
func (p *tracingPublisher) Publish(topic string, msgs ...*message.Message) error {
	spans := make([]trace.Span, 0, len(msgs))
	for _, msg := range msgs {
		if msg == nil {
			continue
		}
		ctx := msg.Context()
		if !trace.SpanContextFromContext(ctx).IsValid() {
			ctx = p.t.propagator.Extract(ctx, MetadataCarrier(msg.Metadata))
		}
		_, span := p.t.tracer.Start(ctx, "publish "+topic, trace.WithSpanKind(trace.SpanKindProducer))
		if span.IsRecording() {
			span.SetAttributes(p.t.eventAttributes(msg, topic, semconv.MessagingOperationTypeSend, "publish")...)
		}
		// A stale context from an earlier hop must not survive next to the
		// new one: Inject writes tracestate only when it is not empty.
		delete(msg.Metadata, HeaderTraceParent)
		delete(msg.Metadata, HeaderTraceState)
		p.t.propagator.Inject(trace.ContextWithSpan(ctx, span), MetadataCarrier(msg.Metadata))
		spans = append(spans, span)
	}
	err := p.pub.Publish(topic, msgs...)
	for _, span := range spans {
		endSpan(span, &err)
	}
	return err
}

// Close closes the decorated publisher.
func (p *tracingPublisher) Close() error { return p.pub.Close() }

// Middleware implements message.HandlerMiddleware: it starts a consumer
// span, child of the trace context the message carries, for the handler's
// context and as parent of the messages it returns. Install it outermost
// (after a recoverer), so that one span covers every retry and the parking.
func (t *Tracing) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		ctx := t.propagator.Extract(msg.Context(), MetadataCarrier(msg.Metadata))
		key := routingKeyOf(msg)
		ctx, span := t.tracer.Start(ctx, "handle "+key, trace.WithSpanKind(trace.SpanKindConsumer))
		if span.IsRecording() {
			attrs := t.eventAttributes(msg, key, semconv.MessagingOperationTypeProcess, "handle")
			if name := message.HandlerNameFromCtx(msg.Context()); name != "" {
				attrs = append(attrs, AttrHandler.String(name))
			}
			span.SetAttributes(attrs...)
		}
		defer endSpan(span, &err)
		msg.SetContext(ctx)
		out, err = h(msg)
		for _, m := range out {
			if m != nil && !trace.SpanContextFromContext(m.Context()).IsValid() {
				m.SetContext(trace.ContextWithSpan(m.Context(), span))
			}
		}
		return out, err
	}
}

// ExecuteParams describes a command execution to Execute.
type ExecuteParams struct {
	// Command is the command's routing key, "agent.thread.prompt". Required.
	Command string
	// Message is the message that carried the command: the event id, type,
	// parents and, when ctx carries no span, the trace context. Optional.
	Message *message.Message
	// EventID is the command's event id when there is no Message. Optional.
	EventID string
	// Attributes are added to the span. Optional.
	Attributes []attribute.KeyValue
}

// Execute runs fn inside a span "execute <command>" and returns fn's error;
// what fn publishes with its context are the span's children. The span
// records fn's error, or a panic, which Execute lets go on. When ctx
// carries a span (Middleware's) it is an internal child of it; otherwise it
// is the delivery's consumer span. Package cqrs calls it from a decorator
// of every command handler (cqrs.ProcessorConfig.Decorators, as in
// examples/tracing).
func (t *Tracing) Execute(ctx context.Context, p ExecuteParams, fn func(ctx context.Context) error) (err error) {
	kind := trace.SpanKindInternal
	delivery := p.Message != nil && !trace.SpanContextFromContext(ctx).IsValid()
	if delivery {
		// No handle span: this one processes the delivery.
		ctx = t.propagator.Extract(ctx, MetadataCarrier(p.Message.Metadata))
		kind = trace.SpanKindConsumer
	}
	ctx, span := t.tracer.Start(ctx, "execute "+p.Command, trace.WithSpanKind(kind))
	defer endSpan(span, &err)
	if span.IsRecording() {
		var attrs []attribute.KeyValue
		switch {
		case delivery:
			attrs = t.eventAttributes(p.Message, routingKeyOf(p.Message), semconv.MessagingOperationTypeProcess, "execute")
		case p.Message != nil:
			attrs = identityAttributes(p.Message, p.Command)
		default:
			attrs = []attribute.KeyValue{AttrEventType.String(p.Command)}
			if p.EventID != "" {
				attrs = append(attrs, AttrEventID.String(p.EventID))
			}
		}
		span.SetAttributes(append(append(attrs, AttrCommand.String(p.Command)), p.Attributes...)...)
	}
	return fn(ctx)
}

func (t *Tracing) eventAttributes(msg *message.Message, routingKey string, op attribute.KeyValue, opName string) []attribute.KeyValue {
	attrs := append(make([]attribute.KeyValue, 0, len(t.common)+8), t.common...)
	attrs = append(attrs, op, semconv.MessagingOperationName(opName),
		semconv.MessagingRabbitMQDestinationRoutingKey(routingKey), semconv.MessagingMessageID(msg.UUID))
	return append(attrs, identityAttributes(msg, routingKey)...)
}

// identityAttributes name the event a message carries: its id, type
// (fallbackType when it has none) and parents.
func identityAttributes(msg *message.Message, fallbackType string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{AttrEventID.String(msg.UUID), AttrEventType.String(cmp.Or(envelope.EventType(msg), fallbackType))}
	if ids := msg.Metadata.Get(envelope.MetaCorrelationIDs); ids != "" {
		attrs = append(attrs, AttrCorrelationIDs.StringSlice(splitIDs(ids)))
	}
	return attrs
}

// splitIDs renders envelope.MetaCorrelationIDs as a list, keeping only valid ids.
func splitIDs(s string) []string {
	ids, err := envelope.ParseIDs(s)
	if err != nil {
		return []string{s}
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// endSpan ends span with *err, or with a panic going through, which it lets go on.
func endSpan(span trace.Span, err *error) {
	defer span.End()
	if v := recover(); v != nil {
		recordError(span, fmt.Errorf("panic: %v", v), "panic")
		panic(v)
	}
	if *err != nil {
		recordError(span, *err, errorType(*err))
	}
}

func recordError(span trace.Span, err error, errType string) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(semconv.ErrorTypeKey.String(errType))
}

// errorType classifies err for error.type, in few values as the semantic
// conventions ask; else it is the Go type of the root cause (the first
// error errors.Is would reach last), so a RetryError or a fmt.Errorf
// wrapper reports what it wraps.
func errorType(err error) string {
	pe, ok := errors.AsType[*envelope.PermanentError](err)
	switch {
	case ok && pe.Kind != "":
		return pe.Kind
	case errors.Is(err, transport.ErrUnroutable):
		return "unroutable"
	case errors.Is(err, transport.ErrNotConfirmed):
		return "not_confirmed"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return fmt.Sprintf("%T", rootCause(err))
}

// rootCause follows err's Unwrap chain to an error that wraps nothing.
func rootCause(err error) error {
	for {
		var next error
		switch w := err.(type) {
		case interface{ Unwrap() error }:
			next = w.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range w.Unwrap() {
				if e != nil {
					next = e
					break
				}
			}
		}
		if next == nil {
			return err
		}
		err = next
	}
}
