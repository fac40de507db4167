package main_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// With BB_EVENT_LOG=on the processor declares the log, and the log keeps
// what others publish and what the processor publishes alike.
func TestRabbit_eventLogKeepsThePromptAndItsResponse(t *testing.T) {
	e := newRabbitEnv(t)
	e.serviceQueues("command_processor")
	logQueue := e.queue("log")
	if logQueue != amqp.EventLogQueue(e.exchange) {
		t.Fatalf("log queue %q, want %q", logQueue, amqp.EventLogQueue(e.exchange))
	}
	got := e.collectResponses()
	p := start(t, e.env("BB_EVENT_LOG=on", "BB_EVENT_LOG_MAX_AGE=1h", "BB_EVENT_LOG_MAX_BYTES=10000000")...)
	p.waitLog(30*time.Second, "event log declared", func(l map[string]any) bool { return l["queue"] == logQueue })
	p.waitReady(30 * time.Second)

	id := uuid.New()
	e.forget(id, uuid.Nil)
	if err := e.publishPrompts([]uuid.UUID{id}); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 15*time.Second, "the prompt is answered", func(n int) bool { return n == 1 })
	p.signal(syscall.SIGINT)
	if code := p.exit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0", code)
	}

	ch := e.channel()
	defer ch.Close()
	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(logQueue, "", false, false, false, false, amqp091.Table{"x-stream-offset": "first"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for len(keys) < 2 {
		select {
		case d := <-deliveries:
			keys = append(keys, d.RoutingKey)
			_ = d.Ack(false)
		case <-time.After(10 * time.Second):
			t.Fatalf("log holds %v, want the prompt and its response", keys)
		}
	}
	if keys[0] != thread.RoutingKeyPrompt || keys[1] != thread.RoutingKeyResponse {
		t.Errorf("log holds %v, want [%s %s]", keys, thread.RoutingKeyPrompt, thread.RoutingKeyResponse)
	}
}
