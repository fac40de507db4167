package cqrs_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/middleware"
)

// harness is a command processor on the embedded transport with an embedded
// correlation store, as `make run` starts it on a bare machine.
type harness struct {
	t      *testing.T
	broker *embedded.Broker
	bus    *bus.Bus
	svc    *bus.Service
	proc   *cqrs.Processor
	reg    *domains.Registry
	store  *correlation.EmbeddedStore
	logger *slog.Logger
}

type harnessOptions struct {
	config   func(*cqrs.ProcessorConfig)
	registry func(*domains.Registry) error
	register func(*cqrs.Processor) error
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	if o.registry != nil {
		if err := o.registry(reg); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := bus.LoadConfig([]string{"SERVICE_NAME=command_processor", "BB_DRAIN_TIMEOUT=5s"}, "")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(newTestOutput(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	broker := embedded.New(logger)
	t.Cleanup(func() { _ = broker.Close() })
	b := bus.NewEmbeddedBus(cfg, broker, logger)
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	// Without batching, Record returns once the links are written: a test
	// that sees the command counted sees its links.
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rec.Close(context.Background()) })
	b.DecoratePublisher(func(p message.Publisher) message.Publisher { return middleware.NewRecordingPublisher(p, rec) })
	pcfg := cqrs.ProcessorConfig{Registry: reg, Logger: logger}
	if o.config != nil {
		o.config(&pcfg)
	}
	proc, err := cqrs.NewProcessor(b.Publisher(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	if o.register != nil {
		if err := o.register(proc); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := b.NewService("")
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.AddHandlersToService(svc); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, broker: broker, bus: b, svc: svc, proc: proc, reg: reg, store: store, logger: logger}
}

// run runs the service until the test ends and waits until it consumes.
func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.svc.Run(ctx) }()
	select {
	case <-h.svc.Running():
	case err := <-done:
		h.t.Fatalf("service stopped at start: %v", err)
	case <-time.After(5 * time.Second):
		h.t.Fatal("service did not start")
	}
	var once sync.Once
	h.t.Cleanup(func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("Run: %v", err)
			}
		})
	})
}

// watch returns the events published under pattern from now on, through a
// queue of the test's own.
func (h *harness) watch(pattern string) <-chan *message.Message {
	h.t.Helper()
	queue := "observer." + uuid.NewString()
	sub := h.broker.Subscriber(transport.SubscriberConfig{QueueName: func(string) string { return queue }, Consumers: 1, DrainTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, pattern)
	if err != nil {
		h.t.Fatal(err)
	}
	out := make(chan *message.Message, 100)
	go func() {
		for m := range msgs {
			m.Ack()
			out <- m
		}
	}()
	h.t.Cleanup(func() { cancel(); _ = sub.Close() })
	return out
}

func (h *harness) publish(envs ...envelope.Envelope) {
	h.t.Helper()
	if err := h.bus.Publish(context.Background(), envs...); err != nil {
		h.t.Fatal(err)
	}
}

// next returns the next event from ch, or fails the test after 5 s.
func next(t *testing.T, ch <-chan *message.Message) envelope.Envelope {
	t.Helper()
	select {
	case m := <-ch:
		env, err := envelope.FromMessage(m)
		if err != nil {
			t.Fatalf("not an envelope: %v", err)
		}
		return env
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return envelope.Envelope{}
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var claudeCode = &envelope.AgentContext{Type: envelope.AgentClaudeCode, Name: "Code Analyzer", InstanceID: "i-1"}

func promptEnvelope(t *testing.T, text string) envelope.Envelope {
	t.Helper()
	env, err := envelope.New(thread.RoutingKeyPrompt, thread.Prompt{Provider: "anthropic", Model: new("claude-sonnet-4"), Prompt: text, Tags: []string{"analysis"}},
		envelope.WithSource(envelope.Source{Host: "127.0.0.1", Type: envelope.TriggerManual, App: "http-client"}),
		envelope.WithAgentContext(claudeCode))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// testOutput is the test's output until the test's cleanups have run.
// Watermill's router logs from goroutines that can outlive Router.Run by a
// moment; a write to a finished test's output is a data race.
type testOutput struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

// newTestOutput returns a writer to t's output that drops what comes after
// t's cleanups (it is registered first, so its own cleanup runs last).
func newTestOutput(t testing.TB) *testOutput {
	w := &testOutput{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return w
}

func (w *testOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.t.Output().Write(p)
}
