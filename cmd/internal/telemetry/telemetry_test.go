package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/cmd/internal/telemetry"
	"github.com/33god/bloodbank-go/internal/settings"
)

func load(t *testing.T, environ ...string) telemetry.Settings {
	t.Helper()
	var s telemetry.Settings
	if err := settings.Load(environ, "", &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewLogger_formatAndLevel(t *testing.T) {
	var buf bytes.Buffer
	l, err := telemetry.NewLogger(&buf, load(t, "BB_LOG_LEVEL=warn"))
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", "key", "value")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["msg"] != "shown" || line["key"] != "value" {
		t.Errorf("auto format, not a terminal: %q (%v), want one JSON line at warn", buf.String(), err)
	}

	buf.Reset()
	l, err = telemetry.NewLogger(&buf, load(t, "BB_LOG_FORMAT=text"))
	if err != nil {
		t.Fatal(err)
	}
	l.Info("readable", "key", "value")
	if out := buf.String(); !strings.Contains(out, "INF readable key=value") || strings.Contains(out, "\x1b[") {
		t.Errorf("text format = %q, want a tint line without colors off a terminal", out)
	}
}

func TestSettings_validateNamesTheVariable(t *testing.T) {
	var s telemetry.Settings
	err := settings.Load([]string{"BB_LOG_FORMAT=xml", "BB_LOG_LEVEL=loud", "BB_TRACING=jaeger"}, "", &s)
	for _, w := range []string{"BB_LOG_FORMAT", "BB_LOG_LEVEL", "BB_TRACING"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want %s named", err, w)
		}
	}
}

func TestNewTracerProvider_stdoutWritesSpansWithTheEnvironment(t *testing.T) {
	var buf bytes.Buffer
	tp, stop, err := telemetry.NewTracerProvider(load(t, "BB_TRACING=stdout", "ENVIRONMENT=staging"), "svc", &buf)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "work")
	span.End()
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, `"work"`) || !strings.Contains(out, "deployment.environment.name") || !strings.Contains(out, "staging") {
		t.Errorf("spans = %s, want span work with deployment.environment.name staging", out)
	}

	buf.Reset()
	tp, stop, err = telemetry.NewTracerProvider(load(t), "svc", &buf)
	if err != nil {
		t.Fatal(err)
	}
	_, span = tp.Tracer("test").Start(context.Background(), "work")
	span.End()
	_ = stop(context.Background())
	if buf.Len() != 0 {
		t.Errorf("tracing off wrote %s", buf.String())
	}
}
