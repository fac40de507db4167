package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
)

type prompt struct {
	Provider string   `json:"provider"`
	Prompt   string   `json:"prompt"`
	Tags     []string `json:"tags"`
}

func embeddedBus(t *testing.T, broker *embedded.Broker, service string) *bus.Bus {
	t.Helper()
	cfg, err := bus.LoadConfig([]string{"SERVICE_NAME=" + service, "BB_DRAIN_TIMEOUT=5s"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return bus.NewEmbeddedBus(cfg, broker, nil)
}

// runService runs s until the test ends and waits until it consumes.
func runService(t *testing.T, s *bus.Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Running():
	case err := <-done:
		t.Fatalf("service stopped at start: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("service did not start")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestService_typedHandlersByPattern(t *testing.T) {
	broker := embedded.New(nil)
	b := embeddedBus(t, broker, "svc")
	s, err := b.NewService("")
	if err != nil {
		t.Fatal(err)
	}
	exact := make(chan bus.Event[prompt], 10)
	wild := make(chan string, 10)
	if err := bus.Handle(s, "on_prompt", "agent.thread.prompt", func(ctx context.Context, ev bus.Event[prompt]) error {
		exact <- ev
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Handle(s, "on_agent", "agent.#", func(ctx context.Context, ev bus.Event[map[string]any]) error {
		wild <- ev.Envelope.EventType
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Handle(s, "on_agent", "x", func(context.Context, bus.Event[prompt]) error { return nil }); err == nil {
		t.Error("a second handler named on_agent was accepted")
	}
	runService(t, s)

	ctx := context.Background()
	p, _ := envelope.New("agent.thread.prompt", prompt{Provider: "anthropic", Prompt: "hi", Tags: []string{"a"}})
	r, _ := envelope.New("agent.thread.response", map[string]any{"provider": "anthropic", "response": "hi"})
	o, _ := envelope.New("fireflies.transcript.ready", map[string]any{"id": "x"})
	if err := b.Publish(ctx, p, r, o); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-exact:
		if ev.Payload.Prompt != "hi" || ev.Envelope.EventID != p.EventID || len(ev.Payload.Tags) != 1 {
			t.Errorf("typed handler got %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the exact handler got nothing")
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case k := <-wild:
			got[k] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("the agent.# handler got only %v", got)
		}
	}
	if !got["agent.thread.prompt"] || !got["agent.thread.response"] {
		t.Errorf("agent.# handler got %v, want prompt and response", got)
	}
	select {
	case k := <-wild:
		t.Errorf("agent.# handler also got %s", k)
	case <-exact:
		t.Error("the exact handler got a second event")
	case <-time.After(200 * time.Millisecond):
	}
	if n := broker.QueueLength(s.QueueName()); n != 0 {
		t.Errorf("%d messages left in the service queue", n)
	}
}

// What a handler publishes with its context is linked to what it handles.
func TestService_publishedEventsCarryTheirCause(t *testing.T) {
	broker := embedded.New(nil)
	b := embeddedBus(t, broker, "svc")
	s, _ := b.NewService("")
	out := make(chan bus.Event[map[string]any], 1)
	_ = bus.Handle(s, "respond", "agent.thread.prompt", func(ctx context.Context, ev bus.Event[prompt]) error {
		resp, err := envelope.New("agent.thread.response", map[string]any{"provider": ev.Payload.Provider, "response": ev.Payload.Prompt})
		if err != nil {
			return err
		}
		return b.Publish(ctx, resp)
	})
	_ = bus.Handle(s, "collect", "agent.thread.response", func(ctx context.Context, ev bus.Event[map[string]any]) error {
		out <- ev
		return nil
	})
	runService(t, s)
	p, _ := envelope.New("agent.thread.prompt", prompt{Provider: "anthropic", Prompt: "echo"})
	if err := b.Publish(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-out:
		if len(ev.Envelope.CorrelationIDs) != 1 || ev.Envelope.CorrelationIDs[0] != p.EventID {
			t.Errorf("response correlation_ids = %v, want [%s]", ev.Envelope.CorrelationIDs, p.EventID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no response")
	}
}

// A failing handler's message is redelivered, not lost; a permanent failure
// is not redelivered forever.
func TestService_failuresRedeliverPermanentOnesDoNot(t *testing.T) {
	broker := embedded.New(nil)
	b := embeddedBus(t, broker, "svc")
	s, _ := b.NewService("")
	var mu sync.Mutex
	attempts := map[string]int{}
	done := make(chan string, 10)
	_ = bus.Handle(s, "flaky", "job.#", func(ctx context.Context, ev bus.Event[map[string]any]) error {
		mu.Lock()
		attempts[ev.Envelope.EventType]++
		n := attempts[ev.Envelope.EventType]
		mu.Unlock()
		switch {
		case ev.Envelope.EventType == "job.permanent":
			done <- ev.Envelope.EventType
			return envelope.Permanent(errors.New("cannot ever work"))
		case n < 3:
			return errors.New("transient")
		}
		done <- ev.Envelope.EventType
		return nil
	})
	runService(t, s)
	publishTypes(t, b, "job.flaky", "job.permanent")
	waitForTypes(t, done, 2, "finished")
	time.Sleep(100 * time.Millisecond) // would-be redeliveries have time to show
	mu.Lock()
	defer mu.Unlock()
	if attempts["job.flaky"] != 3 || attempts["job.permanent"] != 1 {
		t.Errorf("attempts = %v, want flaky 3 and permanent 1", attempts)
	}
}

// A malformed body reaches no handler and does not loop; the good message
// behind it is handled.
func TestService_malformedBodyDoesNotBlockTheQueue(t *testing.T) {
	broker := embedded.New(nil)
	b := embeddedBus(t, broker, "svc")
	s, _ := b.NewService("")
	handled := make(chan string, 10)
	_ = bus.Handle(s, "h", "#", func(ctx context.Context, ev bus.Event[map[string]any]) error {
		handled <- ev.Envelope.EventType
		return nil
	})
	runService(t, s)
	// A raw message that is not an envelope, as a foreign producer could send.
	raw := message.NewMessage(uuid.NewString(), []byte(`[1,2,3]`))
	raw.Metadata.Set(envelope.MetaMalformed, "body is a JSON array, want an envelope object")
	if err := b.Publisher().Publish("some.key", raw); err != nil {
		t.Fatal(err)
	}
	good, _ := envelope.New("some.key", map[string]any{"ok": true})
	if err := b.Publish(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	select {
	case k := <-handled:
		if k != "some.key" {
			t.Errorf("handled %q", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the good message behind the malformed one was not handled")
	}
	select {
	case k := <-handled:
		t.Errorf("a second message reached the handler: %q", k)
	case <-time.After(200 * time.Millisecond):
	}
	if n := broker.QueueLength(s.QueueName()); n != 0 {
		t.Errorf("%d messages left in the queue", n)
	}
}

// Stopping a service lets in-flight handlers finish and ack: nothing is
// requeued, nothing lost.
func TestService_stopDrainsInFlightHandlers(t *testing.T) {
	broker := embedded.New(nil)
	b := embeddedBus(t, broker, "svc")
	s, _ := b.NewService("")
	started := make(chan struct{}, 100)
	release := make(chan struct{})
	var finished sync.WaitGroup
	_ = bus.Handle(s, "slow", "#", func(ctx context.Context, ev bus.Event[map[string]any]) error {
		started <- struct{}{}
		<-release
		finished.Done()
		return nil
	})
	stop := runService(t, s)
	const n = 5
	finished.Add(n)
	for range n {
		env, _ := envelope.New("work.item", map[string]any{})
		if err := b.Publish(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("handlers did not start")
		}
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("the service stopped before its in-flight handlers finished")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the service did not stop after its handlers finished")
	}
	finished.Wait()
	if q := broker.QueueLength(s.QueueName()); q != 0 {
		t.Errorf("%d messages were requeued; want all %d acked", q, n)
	}
}

// A redelivery addressed to one handler (a retry, a replay) reaches only it,
// through a delay queue that hands it back to the service queue.
func TestService_targetedRedeliveryThroughDelayQueue(t *testing.T) {
	broker := embedded.New(nil)
	b := embeddedBus(t, broker, "svc")
	s, _ := b.NewService("")
	got := make(chan string, 10)
	for _, name := range []string{"first", "second"} {
		_ = bus.Handle(s, name, "job.#", func(ctx context.Context, ev bus.Event[map[string]any]) error {
			got <- name
			return nil
		})
	}
	runService(t, s)
	ctx := context.Background()
	delayQueue := s.QueueName() + ".retry.50ms"
	if err := b.DeclareDelayQueue(ctx, delayQueue, 50*time.Millisecond, s.QueueName()); err != nil {
		t.Fatal(err)
	}
	env, _ := envelope.New("job.run", map[string]any{})
	msg, _ := envelope.NewMessage(env)
	msg.Metadata.Set(envelope.MetaTargetHandler, "second")
	msg.Metadata.Set(envelope.MetaOriginalRoutingKey, "job.run")
	if err := b.QueuePublisher().Publish(delayQueue, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-got:
		if name != "second" {
			t.Errorf("handler %q got the redelivery, want only \"second\"", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the delayed redelivery never arrived")
	}
	select {
	case name := <-got:
		t.Errorf("handler %q also got it", name)
	case <-time.After(200 * time.Millisecond):
	}
	if err := b.QueuePublisher().Publish("no.such.queue", msg); !errors.Is(err, transport.ErrUnroutable) {
		t.Errorf("publishing to a missing queue: err = %v, want ErrUnroutable", err)
	}
}

// A panicking handler nacks its message for a redelivery, and the service
// goes on.
func TestService_panicNacksAndTheServiceGoesOn(t *testing.T) {
	broker := embedded.New(nil)
	b := embeddedBus(t, broker, "svc")
	s, _ := b.NewService("")
	var calls sync.Map
	done := make(chan string, 10)
	_ = bus.Handle(s, "panicky", "job.#", func(ctx context.Context, ev bus.Event[map[string]any]) error {
		if n, _ := calls.LoadOrStore(ev.Envelope.EventID, 0); n.(int) == 0 {
			calls.Store(ev.Envelope.EventID, 1)
			panic("handler bug")
		}
		done <- ev.Envelope.EventType
		return nil
	})
	runService(t, s)
	publishTypes(t, b, "job.a", "job.b")
	waitForTypes(t, done, 2, "were handled again after a panic")
}

// publishTypes publishes one empty event of each type.
func publishTypes(t *testing.T, b *bus.Bus, types ...string) {
	t.Helper()
	for _, k := range types {
		env, _ := envelope.New(k, map[string]any{})
		if err := b.Publish(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForTypes waits for n distinct event types on done.
func waitForTypes(t *testing.T, done <-chan string, n int, what string) {
	t.Helper()
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case k := <-done:
			seen[k] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("only %v %s, want %d", seen, what, n)
		}
	}
}

// Many messages in flight at once are handled concurrently, not one after
// another.
func TestService_handlersRunConcurrently(t *testing.T) {
	broker := embedded.New(nil)
	b := embeddedBus(t, broker, "svc")
	s, _ := b.NewService("")
	const n = 8
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	_ = bus.Handle(s, "slow", "job.#", func(ctx context.Context, ev bus.Event[map[string]any]) error {
		arrived <- struct{}{}
		<-release
		return nil
	})
	runService(t, s)
	for range n {
		env, _ := envelope.New("job.x", map[string]any{})
		if err := b.Publish(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d handlers started while the others were still running", i, n)
		}
	}
	close(release)
}
