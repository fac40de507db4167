// Package telemetry builds the OpenTelemetry tracer provider the binaries
// use, from the BB_TRACING setting, so command-processor and bb serve trace
// the same way.
package telemetry

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
)

// NewTracerProvider builds the TracerProvider BB_TRACING asks for, and the
// function that flushes and stops it (call it after the bus is closed, so
// that the last spans are exported):
//
//   - "off" (the default): a no-op provider; the traceparent of what a
//     service consumes is still carried onto what it publishes;
//   - "stdout": the OpenTelemetry SDK, exporting each span as one line of
//     JSON to w, batched off the publish and handle paths.
//
// An OTLP exporter for a collector slots in here the same way.
func NewTracerProvider(mode, service string, w io.Writer) (trace.TracerProvider, func(context.Context) error, error) {
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
