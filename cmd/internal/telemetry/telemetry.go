// Package telemetry builds what the binaries tell the world through: the
// logger (BB_LOG_FORMAT, BB_LOG_LEVEL) and the OpenTelemetry tracer
// provider (BB_TRACING), from one Settings, so that command-processor and
// bb log and trace the same way. Libraries never build a logger: they take
// one, and discard by default.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/term"

	"github.com/33god/bloodbank-go/internal/settings"
)

// Settings say how a binary logs and traces. Read them with
// internal/settings; every field has a default.
type Settings struct {
	// Environment is ENVIRONMENT, shared with the Python services: free
	// form, logged with the settings and set as deployment.environment.name
	// on spans.
	Environment string `env:"ENVIRONMENT" envDefault:"dev"`
	// LogFormat is BB_LOG_FORMAT: "text" (colored, lmittmann/tint),
	// "json", or "auto" (text on a terminal, JSON otherwise).
	LogFormat string `env:"BB_LOG_FORMAT" envDefault:"auto"`
	// LogLevel is BB_LOG_LEVEL: debug, info, warn or error.
	LogLevel string `env:"BB_LOG_LEVEL" envDefault:"info"`
	// Tracing is BB_TRACING: "off", or "stdout" for spans written to stdout.
	Tracing string `env:"BB_TRACING" envDefault:"off"`
}

// Validate reports every setting that is not one of its choices.
func (s Settings) Validate() error {
	var p []error
	switch s.LogFormat {
	case "auto", "text", "json":
	default:
		p = append(p, fmt.Errorf("BB_LOG_FORMAT: want auto, text or json, got %q", s.LogFormat))
	}
	if _, err := ParseLevel(s.LogLevel); err != nil {
		p = append(p, fmt.Errorf("BB_LOG_LEVEL: %w", err))
	}
	if s.Tracing != "off" && s.Tracing != "stdout" {
		p = append(p, fmt.Errorf("BB_TRACING: want off or stdout, got %q", s.Tracing))
	}
	return settings.Join(p...)
}

// ParseLevel reads a log level: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("want debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// NewLogger builds the logger of a binary, writing to w: colored, readable
// lines from lmittmann/tint when LogFormat is "text", or "auto" and w is a
// terminal; JSON lines otherwise, for log collectors.
func NewLogger(w io.Writer, s Settings) (*slog.Logger, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	level, _ := ParseLevel(s.LogLevel)
	f, isFile := w.(*os.File)
	tty := isFile && term.IsTerminal(int(f.Fd()))
	if s.LogFormat == "text" || (s.LogFormat == "auto" && tty) {
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly, NoColor: !tty})), nil
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
}

// RouteRedisLogs sends what go-redis writes on its global logger (every
// failed dial, to stderr by default) to l at debug level: the binaries
// report a Redis that is away themselves, in their errors, readiness
// checks and rate-limited warnings.
func RouteRedisLogs(l *slog.Logger) {
	redis.SetLogger(redisLogger{l})
}

type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// NewTracerProvider builds the TracerProvider BB_TRACING asks for, and the
// function that flushes and stops it (call it after the bus is closed, so
// that the last spans are exported):
//
//   - "off": a no-op provider; the traceparent of what a service consumes
//     is still carried onto what it publishes;
//   - "stdout": the OpenTelemetry SDK, exporting each span as one line of
//     JSON to w, batched off the publish and handle paths.
//
// An OTLP exporter for a collector slots in here the same way.
func NewTracerProvider(s Settings, service string, w io.Writer) (trace.TracerProvider, func(context.Context) error, error) {
	switch s.Tracing {
	case "off":
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	case "stdout":
		exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, nil, fmt.Errorf("cannot start the stdout span exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(exp),
			sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service),
				semconv.DeploymentEnvironmentNameKey.String(s.Environment))),
		)
		return tp, tp.Shutdown, nil
	}
	return nil, nil, fmt.Errorf("BB_TRACING: want off or stdout, got %q", s.Tracing)
}
