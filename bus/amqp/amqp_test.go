package amqp_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/internal/testenv"
)

// rabbit gives a test a connection to the real broker and its own exchange,
// deleted with every queue the test declared when it ends.
type rabbit struct {
	t        testing.TB
	url      string
	conn     *amqp.Connection
	exchange string
	mu       sync.Mutex
	queues   map[string]bool
}

func newRabbit(t testing.TB) *rabbit {
	t.Helper()
	url := testenv.RabbitURL(t)
	conn, err := amqp.Dial(context.Background(), amqp.ConnectionConfig{URL: url, ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := &rabbit{t: t, url: url, conn: conn, exchange: "bbtest." + uuid.NewString()[:8], queues: map[string]bool{}}
	t.Cleanup(func() {
		raw := r.raw()
		defer raw.Close()
		ch, err := raw.Channel()
		if err == nil {
			r.mu.Lock()
			for q := range r.queues {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
			r.mu.Unlock()
			_ = ch.ExchangeDelete(r.exchange, false, false)
			_ = ch.Close()
		}
		_ = conn.Close()
	})
	return r
}

func (r *rabbit) queue(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.exchange + "." + name
	r.queues[q] = true
	return q
}

// raw is a plain amqp091 connection, standing in for the Python services.
func (r *rabbit) raw() *amqp091.Connection {
	c, err := amqp091.Dial(r.url)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *rabbit) topology() amqp.Topology { return amqp.Topology{Exchange: r.exchange} }

func TestAMQP_universalPubSub(t *testing.T) {
	r := newRabbit(t)
	marshaler := wamqp.DefaultMarshaler{}
	newPubSub := func(t *testing.T, queueName func(string) string) (message.Publisher, message.Subscriber) {
		pub, err := amqp.NewPublisher(r.conn, amqp.PublisherConfig{Topology: r.topology(), Marshaler: marshaler})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := amqp.NewSubscriber(r.conn, amqp.SubscriberConfig{
			Topology:  r.topology(),
			Marshaler: marshaler,
			SubscriberConfig: transport.SubscriberConfig{
				QueueName:    queueName,
				Consumers:    10,
				DrainTimeout: time.Second,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return pub, sub
	}
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups:      true,
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     false,
		Persistent:          true,
		ForceShort:          true,
	},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, func(topic string) string { return r.queue(topic) })
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return newPubSub(t, func(topic string) string { return r.queue(group + "." + topic) })
		})
}

// pythonBody is an envelope exactly as the Python publisher writes it:
// compact JSON, +00:00 offset, explicit nulls.
func pythonBody(id uuid.UUID, eventType string) []byte {
	return []byte(`{"event_id":"` + id.String() + `","event_type":"` + eventType + `","timestamp":"2026-01-29T10:00:00.123456+00:00","version":"1.0.0","source":{"host":"127.0.0.1","type":"manual","app":"http-client","meta":null},"correlation_ids":[],"agent_context":{"type":"claude-code","name":"Code Analyzer","system_prompt":null,"instance_id":null,"mcp_servers":null,"file_references":null,"url_references":null,"code_state":null,"checkpoint_id":null,"meta":null},"payload":{"provider":"anthropic","model":"claude-sonnet-4","prompt":"Analyze this codebase","project":"bloodbank","working_dir":null,"domain":null,"tags":["analysis"]}}`)
}

func TestAMQP_pythonPublishGoReceives(t *testing.T) {
	r := newRabbit(t)
	queue := r.queue("svc")
	sub, err := amqp.NewSubscriber(r.conn, amqp.SubscriberConfig{
		Topology:         r.topology(),
		SubscriberConfig: transport.SubscriberConfig{QueueName: func(string) string { return queue }},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "agent.thread.*")
	if err != nil {
		t.Fatal(err)
	}

	raw := r.raw()
	defer raw.Close()
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	err = ch.PublishWithContext(ctx, r.exchange, "agent.thread.prompt", false, false, amqp091.Publishing{
		ContentType: "application/json", DeliveryMode: amqp091.Persistent, MessageId: id.String(),
		Body: pythonBody(id, "agent.thread.prompt"),
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-msgs:
		defer msg.Ack()
		if msg.UUID != id.String() {
			t.Errorf("UUID = %s, want the event id %s", msg.UUID, id)
		}
		if reason, bad := envelope.Malformed(msg); bad {
			t.Fatalf("a Python envelope was marked malformed: %s", reason)
		}
		env, err := envelope.FromMessage(msg)
		if err != nil {
			t.Fatal(err)
		}
		if env.EventType != "agent.thread.prompt" || env.Source.App != "http-client" || env.AgentContext == nil || env.AgentContext.Name != "Code Analyzer" {
			t.Errorf("envelope = %+v, want the Python event's fields", env)
		}
		if want := time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC); !env.Timestamp.Equal(want) {
			t.Errorf("timestamp = %v, want %v", env.Timestamp, want)
		}
		var payload struct {
			Prompt string   `json:"prompt"`
			Tags   []string `json:"tags"`
		}
		if err := json.Unmarshal(msg.Payload, &payload); err != nil || payload.Prompt != "Analyze this codebase" || len(payload.Tags) != 1 {
			t.Errorf("payload = %s (%v), want the Python payload", msg.Payload, err)
		}
		if got := msg.Metadata.Get(envelope.MetaRoutingKey); got != "agent.thread.prompt" {
			t.Errorf("routing key metadata = %q", got)
		}
	case <-ctx.Done():
		t.Fatal("the Go subscriber did not receive the Python-style event")
	}
}

func TestAMQP_goPublishRawReceives(t *testing.T) {
	r := newRabbit(t)
	raw := r.raw()
	defer raw.Close()
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := r.queue("python")
	if err := r.topology().DeclareQueue(ch, queue, "fireflies.#"); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	pub, err := amqp.NewPublisher(r.conn, amqp.PublisherConfig{Topology: r.topology(), UnroutableIsError: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	env, err := envelope.New("fireflies.transcript.upload", map[string]any{"media_file": "a.mp4", "media_duration_seconds": 60, "media_type": "video/mp4"},
		envelope.WithCorrelationIDs(uuid.New()), envelope.WithSource(envelope.Source{Host: "h", Type: envelope.TriggerHook, App: "go-test"}))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := envelope.NewMessage(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(env.EventType, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deliveries:
		if d.DeliveryMode != amqp091.Persistent || d.ContentType != "application/json" || d.ContentEncoding != "utf-8" || d.MessageId != env.EventID.String() {
			t.Errorf("properties: mode=%d type=%q encoding=%q id=%q; want 2, application/json, utf-8, %s",
				d.DeliveryMode, d.ContentType, d.ContentEncoding, d.MessageId, env.EventID)
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal(d.Body, &body); err != nil {
			t.Fatalf("body is not a JSON object: %v", err)
		}
		for _, k := range []string{"event_id", "event_type", "timestamp", "version", "source", "correlation_ids", "agent_context", "payload"} {
			if _, ok := body[k]; !ok {
				t.Errorf("body lacks %q: %s", k, d.Body)
			}
		}
		got, err := envelope.Decode(d.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got.EventID != env.EventID || got.CorrelationIDs[0] != env.CorrelationIDs[0] || string(body["agent_context"]) != "null" {
			t.Errorf("decoded %+v, want %+v", got, env)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("raw consumer received nothing")
	}
	if s := pub.Stats(); s.Confirmed != 1 || s.Unroutable != 0 {
		t.Errorf("stats = %+v, want one confirmed publish", s)
	}
}

func TestAMQP_unroutableIsReported(t *testing.T) {
	r := newRabbit(t)
	for _, asError := range []bool{true, false} {
		pub, err := amqp.NewPublisher(r.conn, amqp.PublisherConfig{Topology: r.topology(), UnroutableIsError: asError})
		if err != nil {
			t.Fatal(err)
		}
		env, _ := envelope.New("nobody.listens", map[string]any{"x": 1})
		msg, _ := envelope.NewMessage(env)
		err = pub.Publish(env.EventType, msg)
		if asError && !errors.Is(err, transport.ErrUnroutable) {
			t.Errorf("UnroutableIsError: err = %v, want ErrUnroutable", err)
		}
		if !asError && err != nil {
			t.Errorf("default: err = %v, want nil (logged and counted)", err)
		}
		if got := pub.Stats().Unroutable; got != 1 {
			t.Errorf("Unroutable = %d, want 1", got)
		}
		_ = pub.Close()
	}
}

// With many publishes in flight on each channel, every return is tied to
// its own publish: exactly the unroutable ones fail with ErrUnroutable.
func TestAMQP_unroutableAmongManyInFlight(t *testing.T) {
	r := newRabbit(t)
	raw := r.raw()
	defer raw.Close()
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.topology().DeclareQueue(ch, r.queue("bound"), "bound.#"); err != nil {
		t.Fatal(err)
	}
	pub, err := amqp.NewPublisher(r.conn, amqp.PublisherConfig{Topology: r.topology(), Channels: 2, UnroutableIsError: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 1000
	confs := make([]*amqp.Confirmation, n)
	for i := range confs {
		key := "bound.event"
		if i%3 == 0 {
			key = "nobody.listens"
		}
		env, _ := envelope.New(key, map[string]any{"i": i})
		msg, _ := envelope.NewMessage(env)
		if confs[i], err = pub.PublishAsync(ctx, key, msg); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range confs {
		err := c.Wait(ctx)
		if unroutable := i%3 == 0; unroutable != errors.Is(err, transport.ErrUnroutable) || (!unroutable && err != nil) {
			t.Errorf("publish %d (unroutable: %v): err = %v", i, unroutable, err)
		}
	}
	if s := pub.Stats(); s.Unroutable != (n+2)/3 || s.Confirmed != n-(n+2)/3 {
		t.Errorf("stats = %+v, want %d unroutable and %d confirmed", s, (n+2)/3, n-(n+2)/3)
	}
}

// A publish whose channel the broker closes before the confirm fails with
// ErrNotConfirmed, and the next publish goes out on a new channel. Here the
// broker closes it because the exchange was deleted under the publisher.
func TestAMQP_channelClosedBeforeConfirm(t *testing.T) {
	r := newRabbit(t)
	pub, err := amqp.NewPublisher(r.conn, amqp.PublisherConfig{Topology: r.topology(), Channels: 1})
	if err != nil {
		t.Fatal(err)
	}
	publish := func() error {
		env, _ := envelope.New("nobody.listens", map[string]any{})
		msg, _ := envelope.NewMessage(env)
		return pub.Publish(env.EventType, msg)
	}
	if err := publish(); err != nil {
		t.Fatal(err)
	}
	raw := r.raw()
	defer raw.Close()
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete(r.exchange, false, false); err != nil {
		t.Fatal(err)
	}
	if err := publish(); !errors.Is(err, transport.ErrNotConfirmed) {
		t.Errorf("publish to a deleted exchange: err = %v, want ErrNotConfirmed", err)
	}
	if err := publish(); err != nil {
		t.Errorf("publish after the channel closed: %v, want it sent on a new channel", err)
	}
	_ = pub.Close()
	if err := publish(); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("publish after Close: err = %v, want ErrClosed", err)
	}
}

// Two services on one exchange each get exactly what their patterns match.
func TestAMQP_servicesReceiveWhatTheirPatternsMatch(t *testing.T) {
	r := newRabbit(t)
	type svc struct {
		name     string
		patterns []string
		want     []string
	}
	services := []svc{
		{"transcripts", []string{"fireflies.transcript.*"}, []string{"fireflies.transcript.ready", "fireflies.transcript.failed"}},
		{"agents", []string{"agent.#", "llm.prompt"}, []string{"agent.thread.prompt", "agent.feedback.requested", "llm.prompt"}},
	}
	keys := []string{"fireflies.transcript.ready", "agent.thread.prompt", "fireflies.transcript.failed", "llm.prompt", "llm.response", "agent.feedback.requested", "fireflies.other.ready"}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make([]chan string, len(services))
	for i, s := range services {
		queue := r.queue(s.name)
		sub, err := amqp.NewSubscriber(r.conn, amqp.SubscriberConfig{
			Topology: r.topology(),
			SubscriberConfig: transport.SubscriberConfig{
				QueueName: func(string) string { return queue },
				Patterns:  s.patterns,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		got[i] = make(chan string, 100)
		for _, p := range s.patterns {
			msgs, err := sub.Subscribe(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			go func(out chan<- string) {
				for m := range msgs {
					out <- envelope.EventType(m)
					m.Ack()
				}
			}(got[i])
		}
	}
	pub, err := amqp.NewPublisher(r.conn, amqp.PublisherConfig{Topology: r.topology()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, k := range keys {
		env, _ := envelope.New(k, map[string]any{"n": k})
		msg, _ := envelope.NewMessage(env)
		if err := pub.Publish(k, msg); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range services {
		var received []string
		for range s.want {
			select {
			case k := <-got[i]:
				received = append(received, k)
			case <-ctx.Done():
				t.Fatalf("%s received %v, want %v", s.name, received, s.want)
			}
		}
		select {
		case extra := <-got[i]:
			t.Errorf("%s also received %s", s.name, extra)
		case <-time.After(300 * time.Millisecond):
		}
		if !slices.Equal(sorted(received), sorted(s.want)) {
			t.Errorf("%s received %v, want %v", s.name, received, s.want)
		}
	}
}

// The whole path a service uses: bus.Open on RabbitMQ, a typed handler, a
// Python-style event published by a raw client.
func TestAMQP_serviceHandlesPythonEvent(t *testing.T) {
	r := newRabbit(t)
	cfg, err := bus.LoadConfig([]string{"RABBIT_URL=" + r.url, "EXCHANGE_NAME=" + r.exchange, "SERVICE_NAME=go_consumer", "BB_DRAIN_TIMEOUT=2s"}, "")
	if err != nil {
		t.Fatal(err)
	}
	r.queue("go_consumer")
	b, err := bus.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Transport() != bus.TransportAMQP {
		t.Fatalf("transport = %s", b.Transport())
	}
	svc, err := b.NewService("")
	if err != nil {
		t.Fatal(err)
	}
	type promptPayload struct {
		Provider string   `json:"provider"`
		Prompt   string   `json:"prompt"`
		Domain   *string  `json:"domain"`
		Tags     []string `json:"tags"`
	}
	got := make(chan bus.Event[promptPayload], 1)
	if err := bus.Handle(svc, "on_prompt", "agent.thread.*", func(ctx context.Context, ev bus.Event[promptPayload]) error {
		got <- ev
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	<-svc.Running()

	raw := r.raw()
	defer raw.Close()
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	if err := ch.PublishWithContext(ctx, r.exchange, "agent.thread.prompt", false, false, amqp091.Publishing{
		ContentType: "application/json", DeliveryMode: amqp091.Persistent, MessageId: id.String(), Body: pythonBody(id, "agent.thread.prompt"),
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Envelope.EventID != id || ev.Payload.Prompt != "Analyze this codebase" || ev.Payload.Domain != nil || ev.Payload.Tags[0] != "analysis" {
			t.Errorf("handler got %+v", ev)
		}
		if ev.Envelope.Source.App != "http-client" || ev.Envelope.AgentContext.Type != envelope.AgentClaudeCode {
			t.Errorf("envelope metadata lost: %+v", ev.Envelope)
		}
	case <-ctx.Done():
		t.Fatal("the typed handler did not receive the Python event")
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	// Everything was acked: the durable queue is empty after the service stopped.
	q, err := ch.QueueDeclarePassive(svc.QueueName(), true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 0 {
		t.Errorf("%d messages left in %s", q.Messages, svc.QueueName())
	}
}

// subscribe consumes pattern from the test's queue named name, and returns
// the messages with a publisher on the test's exchange; both close when the
// test ends.
func (r *rabbit) subscribe(t *testing.T, name, pattern string, cfg transport.SubscriberConfig) (<-chan *message.Message, *amqp.Publisher) {
	t.Helper()
	queue := r.queue(name)
	cfg.QueueName = func(string) string { return queue }
	sub, err := amqp.NewSubscriber(r.conn, amqp.SubscriberConfig{Topology: r.topology(), SubscriberConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs, err := sub.Subscribe(context.Background(), pattern)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := amqp.NewPublisher(r.conn, amqp.PublisherConfig{Topology: r.topology()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return msgs, pub
}

// A delivery whose handler never finishes must not hold back the acks of
// the others: it keeps one slot of the prefetch window, and with prefetch 8
// the queue keeps flowing past it.
func TestAMQP_stuckHandlerDoesNotStopTheQueue(t *testing.T) {
	r := newRabbit(t)
	msgs, pub := r.subscribe(t, "stuck", "stuck.#", transport.SubscriberConfig{Consumers: 8, Prefetch: 8, DrainTimeout: 200 * time.Millisecond})
	const n = 100
	for range n {
		env, _ := envelope.New("stuck.job", map[string]any{})
		msg, _ := envelope.NewMessage(env)
		if err := pub.Publish(env.EventType, msg); err != nil {
			t.Fatal(err)
		}
	}
	first := true
	for handled := 0; handled < n-1; {
		select {
		case m := <-msgs:
			if first {
				first = false // never acked: the handler is stuck
				continue
			}
			m.Ack()
			handled++
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d messages behind a stuck one were handled: the prefetch window filled up", handled, n-1)
		}
	}
}

// When the broker cancels the consumer (its queue was deleted), the
// subscriber declares the queue again and goes on consuming.
func TestAMQP_consumerCancelledByBrokerResubscribes(t *testing.T) {
	r := newRabbit(t)
	queue := r.queue("cancelled")
	msgs, pub := r.subscribe(t, "cancelled", "cancel.#", transport.SubscriberConfig{Consumers: 4, DrainTimeout: time.Second})
	publishAndReceive := func(what string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			env, _ := envelope.New("cancel.job", map[string]any{})
			msg, _ := envelope.NewMessage(env)
			// Until the queue is declared again the publish is unroutable
			// (logged and counted): publish again until one arrives.
			if err := pub.Publish(env.EventType, msg); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-msgs:
				m.Ack()
				return
			case <-time.After(200 * time.Millisecond):
			case <-deadline:
				t.Fatalf("no message received %s", what)
			}
		}
	}
	publishAndReceive("before the queue was deleted")
	raw := r.raw()
	defer raw.Close()
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	publishAndReceive("after the queue was deleted: the subscriber did not declare it again")
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
