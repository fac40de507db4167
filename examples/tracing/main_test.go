package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/examples/internal/extest"
)

// trSpan is the part of a span, as the stdout exporter writes it, that the
// test checks.
type trSpan struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct {
		TraceID, SpanID string
		Remote          bool
	}
	SpanKind   int
	Attributes []struct {
		Key   string
		Value struct{ Value any }
	}
}

func (s trSpan) attr(key string) any {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.Value
		}
	}
	return nil
}

const (
	kindConsumer = 5 // trace.SpanKindConsumer, as the exporter writes it
	kindProducer = 4
	noSpan       = "0000000000000000"
)

func TestRun_oneTraceOfThreeSpansOnTheEmbeddedTransport(t *testing.T) {
	testOneTrace(t, extest.EmbeddedConfig(t))
}

// On RabbitMQ the trace context crosses the broker in the AMQP headers.
func TestRun_oneTraceOfThreeSpansOnRabbitMQ(t *testing.T) {
	cfg := extest.RabbitConfig(t, serviceName)
	testOneTrace(t, cfg)
	extest.WantNoServiceQueue(t, cfg, serviceName)
}

func testOneTrace(t *testing.T, cfg bus.Config) {
	out := runDemo(t, cfg, "stdout")
	exported, summary, ok := strings.Cut(out, "\ntrace ")
	if !ok {
		t.Fatalf("no span tree after the exporter's output:\n%s", out)
	}
	spans := trDecode(t, exported)
	byName := map[string]trSpan{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	publishPrompt, execute, publishResponse := byName["publish agent.thread.prompt"], byName["execute agent.thread.prompt"], byName["publish agent.thread.response"]
	if len(spans) != 3 || publishPrompt.Name == "" || execute.Name == "" || publishResponse.Name == "" {
		t.Fatalf("exported spans %v, want publish agent.thread.prompt, execute agent.thread.prompt, publish agent.thread.response", names(spans))
	}

	traceID := publishPrompt.SpanContext.TraceID
	for _, s := range spans {
		if s.SpanContext.TraceID != traceID {
			t.Errorf("span %q is in trace %s, want %s: not one trace", s.Name, s.SpanContext.TraceID, traceID)
		}
	}
	if publishPrompt.Parent.SpanID != noSpan {
		t.Errorf("publish prompt has parent %s, want none (the root)", publishPrompt.Parent.SpanID)
	}
	if execute.Parent.SpanID != publishPrompt.SpanContext.SpanID || !execute.Parent.Remote {
		t.Errorf("execute's parent is %s (remote %v), want the publish span %s, remote: it came in the message headers",
			execute.Parent.SpanID, execute.Parent.Remote, publishPrompt.SpanContext.SpanID)
	}
	if publishResponse.Parent.SpanID != execute.SpanContext.SpanID {
		t.Errorf("publish response's parent is %s, want the execute span %s", publishResponse.Parent.SpanID, execute.SpanContext.SpanID)
	}
	if publishPrompt.SpanKind != kindProducer || execute.SpanKind != kindConsumer || publishResponse.SpanKind != kindProducer {
		t.Errorf("span kinds %d %d %d, want producer (4), consumer (5), producer (4)", publishPrompt.SpanKind, execute.SpanKind, publishResponse.SpanKind)
	}

	// Linked to the correlation graph by event id.
	promptID, _ := publishPrompt.attr("bloodbank.event_id").(string)
	if promptID == "" || execute.attr("bloodbank.event_id") != promptID {
		t.Errorf("event ids: publish %v, execute %v; want the prompt's on both", promptID, execute.attr("bloodbank.event_id"))
	}
	if execute.attr("bloodbank.command") != "agent.thread.prompt" {
		t.Errorf("execute's bloodbank.command = %v, want agent.thread.prompt", execute.attr("bloodbank.command"))
	}
	if parents, _ := publishResponse.attr("bloodbank.correlation_ids").([]any); len(parents) != 1 || parents[0] != promptID {
		t.Errorf("response's bloodbank.correlation_ids = %v, want [%s]", publishResponse.attr("bloodbank.correlation_ids"), promptID)
	}
	for _, s := range spans {
		if s.attr("bloodbank.event_type") == nil || s.attr("messaging.rabbitmq.destination.routing_key") == nil {
			t.Errorf("span %q lacks the event type or routing key", s.Name)
		}
	}

	wantTree := traceID + ":\n" +
		"  publish agent.thread.prompt (producer) event " + promptID + "\n" +
		"    execute agent.thread.prompt (consumer) event " + promptID + "\n" +
		"      publish agent.thread.response (producer) event "
	if !strings.HasPrefix(summary, wantTree) {
		t.Errorf("span tree:\ntrace %s\nwant it to start with:\ntrace %s", summary, wantTree)
	}
}

func TestRun_off(t *testing.T) {
	if out := runDemo(t, extest.EmbeddedConfig(t), "off"); out != "no spans: BB_TRACING=off\n" {
		t.Errorf("output with BB_TRACING=off:\n%s", out)
	}
}

func TestNewTracerProvider_unknownMode(t *testing.T) {
	if _, _, err := newTracerProvider("jaeger", serviceName, io.Discard); err == nil || !strings.Contains(err.Error(), `BB_TRACING="jaeger"`) {
		t.Errorf("error = %v, want one naming BB_TRACING", err)
	}
}

func runDemo(t *testing.T, cfg bus.Config, mode string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), extest.Timeout)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, cfg, mode, extest.Logger(t), &out); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, &out)
	}
	return out.String()
}

// trDecode reads the JSON objects the stdout exporter wrote, one per span.
func trDecode(t *testing.T, s string) []trSpan {
	t.Helper()
	var spans []trSpan
	dec := json.NewDecoder(strings.NewReader(s))
	for {
		var sp trSpan
		err := dec.Decode(&sp)
		if errors.Is(err, io.EOF) {
			return spans
		}
		if err != nil {
			t.Fatalf("exporter output is not JSON spans: %v\n%s", err, s)
		}
		spans = append(spans, sp)
	}
}

func names(spans []trSpan) []string {
	var ns []string
	for _, s := range spans {
		ns = append(ns, s.Name)
	}
	return ns
}
