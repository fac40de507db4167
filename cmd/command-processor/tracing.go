package main

import (
	"cmp"
	"context"
	"fmt"
	"io"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/middleware"
)

// newTracerProvider builds the TracerProvider BB_TRACING asks for, and the
// function that flushes and stops it (call it after the bus is closed, so
// that the last spans are exported):
//
//   - "off" (the default): a no-op provider; the traceparent of what the
//     processor consumes is still carried onto what it publishes;
//   - "stdout": the OpenTelemetry SDK, exporting each span as one line of
//     JSON to w, batched off the publish and handle paths.
//
// An OTLP exporter for a collector slots in here the same way.
func newTracerProvider(mode, service string, w io.Writer) (trace.TracerProvider, func(context.Context) error, error) {
	switch cmp.Or(mode, "off") {
	case "off":
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	case "stdout":
		exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, nil, fmt.Errorf("cannot start the stdout span exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(exp),
			sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))),
		)
		return tp, tp.Shutdown, nil
	}
	return nil, nil, fmt.Errorf("BB_TRACING: want off or stdout, got %q", mode)
}

// traceCommands is the cqrs decorator that runs every command inside an
// "execute <command>" span, a child of the delivery's "handle" span; what
// the command publishes with its context continues the trace.
func traceCommands(tr *middleware.Tracing) cqrs.Decorator {
	return func(next cqrs.HandlerFunc) cqrs.HandlerFunc {
		return func(ctx context.Context, ex *cqrs.Execution) error {
			return tr.Execute(ctx, middleware.ExecuteParams{Command: ex.Context.EventType, Message: ex.Message},
				func(ctx context.Context) error { return next(ctx, ex) })
		}
	}
}
