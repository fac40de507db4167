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
)

// newTracerProvider builds the TracerProvider BB_TRACING asks for, as
// command-processor does: a no-op one for "off", the OpenTelemetry SDK
// writing one JSON span per line to w for "stdout". The returned function
// flushes and stops it.
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
