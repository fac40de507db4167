package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/examples/internal/extest"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
)

// A Python service's prompts reach the Watermill app and are answered with
// linked responses; every body it cannot handle (a payload invalid for its
// type, four malformed bodies, an agent that never answers) is parked in the
// poison queue with its reason, kind and body, once, while the router goes
// on; a transient failure is retried.
func TestApp_answersPythonPromptsAndParksWhatItCannotHandle(t *testing.T) {
	e := newRabbitEnv(t)
	var flakyCalls int
	var mu sync.Mutex
	store := e.start(func(ctx context.Context, p thread.Prompt) (string, error) {
		switch p.Prompt {
		case "down":
			return "", errors.New("model endpoint unreachable")
		case "flaky":
			mu.Lock()
			defer mu.Unlock()
			if flakyCalls++; flakyCalls == 1 {
				return "", errors.New("model endpoint timeout")
			}
		}
		return echo(ctx, p)
	})

	first := uuid.New()
	e.publish(first.String(), pythonPrompt(first, "first"))
	e.wantResponse(first, "echo: first")
	e.wantRecordedParents(store, first)

	// What a Python service may publish that this one cannot handle, with
	// what Poison must say about it. Each has an AMQP message_id, the
	// event id the Python publisher sets, which the parked message keeps.
	invalid, latin1, array, noID, down := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	bad := []struct {
		name, messageID string
		body            []byte
		kind, reason    string
		attempts        string
	}{
		{"payload invalid for its type", invalid.String(),
			[]byte(strings.Replace(string(pythonPrompt(invalid, "tags are a list")), `"tags":[]`, `"tags":"analysis"`, 1)),
			envelope.KindInvalid, "payload.tags", "1"},
		{"not JSON", uuid.NewString(), []byte("prompt: summarise the meeting"), envelope.KindMalformed, "not JSON", "1"},
		{"not UTF-8", latin1.String(), pythonPrompt(latin1, "caf\xe9 cr\xe8me"), envelope.KindMalformed, "UTF-8", "1"},
		{"a JSON array", array.String(), []byte(`[` + string(pythonPrompt(array, "in an array")) + `]`), envelope.KindMalformed, "JSON array", "1"},
		{"an envelope without event_id", noID.String(),
			[]byte(strings.Replace(string(pythonPrompt(noID, "no id")), `"event_id":"`+noID.String()+`",`, "", 1)),
			envelope.KindMalformed, "event_id", "1"},
		{"a prompt the agent never answers", down.String(), pythonPrompt(down, "down"), envelope.KindHandler, "model endpoint unreachable", "3"},
	}
	for _, b := range bad {
		e.publish(b.messageID, b.body)
	}
	flaky := uuid.New()
	e.publish(flaky.String(), pythonPrompt(flaky, "flaky"))
	last := uuid.New()
	e.publish(last.String(), pythonPrompt(last, "after the bad ones"))
	e.wantResponse(flaky, "echo: flaky")
	e.wantResponse(last, "echo: after the bad ones")

	parked := e.parked(len(bad))
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			p, ok := parked[b.messageID]
			if !ok {
				t.Fatalf("not parked in %s (parked: %d messages)", e.cfg.poisonQueue(), len(parked))
			}
			if string(p.Body) != string(b.body) {
				t.Errorf("parked body differs from the body published:\n got %q\nwant %q", p.Body, b.body)
			}
			if got := p.Headers[middleware.HeaderPoisonKind]; got != b.kind {
				t.Errorf("%s = %v, want %q", middleware.HeaderPoisonKind, got, b.kind)
			}
			if reason, _ := p.Headers[middleware.HeaderPoisonReason].(string); !strings.Contains(reason, b.reason) {
				t.Errorf("%s = %q, want it to name %q", middleware.HeaderPoisonReason, reason, b.reason)
			}
			if got := p.Headers[middleware.HeaderPoisonAttempts]; got != b.attempts {
				t.Errorf("%s = %v, want %s", middleware.HeaderPoisonAttempts, got, b.attempts)
			}
			if got := p.Headers[envelope.MetaOriginalRoutingKey]; got != thread.RoutingKeyPrompt {
				t.Errorf("%s = %v, want %s", envelope.MetaOriginalRoutingKey, got, thread.RoutingKeyPrompt)
			}
			if got := p.Headers[middleware.HeaderPoisonService]; got != serviceName {
				t.Errorf("%s = %v, want %s", middleware.HeaderPoisonService, got, serviceName)
			}
		})
	}

	e.stop()
	// Everything was acked: after the consumer is gone, nothing waits in
	// the service queue, not even a delivery nacked back into it.
	if q := e.inspect(e.cfg.serviceQueue()); q.Messages != 0 {
		t.Errorf("%d messages left in %s after the router stopped, want 0", q.Messages, e.cfg.serviceQueue())
	}
	// Each body went through the router once: a redelivered one would be
	// counted again. Validate runs once per attempt: first, last, flaky
	// twice and down three times were valid.
	if got, want := e.app.validation.Stats(), (middleware.ValidationStats{Valid: 7, Invalid: 1, Malformed: 4}); got != want {
		t.Errorf("validation %+v, want %+v", got, want)
	}
	if got, want := e.app.retry.Stats(), (middleware.RetryStats{Retried: 3, Exhausted: 1}); got != want {
		t.Errorf("retry %+v, want %+v", got, want)
	}
	if got, want := e.app.poison.Stats(), (middleware.PoisonStats{Parked: uint64(len(bad))}); got != want {
		t.Errorf("poison %+v, want %+v", got, want)
	}
}

// Why amqp.TopologyBuilder exists: watermill-amqp's DefaultTopologyBuilder
// binds the queue with QueueBind.GenerateRoutingKey(queue name), not of the
// topic, so a service queue on the Bloodbank exchange is bound to its own
// name and a prompt published under its routing key reaches no queue.
func TestWatermillAMQP_defaultTopologyBindsTheQueueToItsOwnName(t *testing.T) {
	e := newRabbitEnv(t)
	queue := e.cfg.serviceQueue()
	// What a newcomer writes: a topic exchange, the service queue, and
	// "bind by topic".
	cfg := subscriberConfig(e.cfg, envelope.Codec{})
	cfg.Queue.GenerateName = wamqp.GenerateQueueNameConstant(queue)
	cfg.QueueBind.GenerateRoutingKey = func(topic string) string { return topic }
	cfg.TopologyBuilder = &wamqp.DefaultTopologyBuilder{}
	sub, err := wamqp.NewSubscriber(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.SubscribeInitialize(thread.RoutingKeyPrompt); err != nil {
		t.Fatal(err)
	}
	if e.routed(thread.RoutingKeyPrompt) {
		t.Errorf("the default topology routed %s to %s; want it unroutable", thread.RoutingKeyPrompt, queue)
	}
	if !e.routed(queue) {
		t.Errorf("the default topology did not bind %s to its own name", queue)
	}

	cfg.TopologyBuilder = amqp.TopologyBuilder{Topology: amqp.Topology{Exchange: e.cfg.Exchange}, Patterns: []string{"agent.thread.*"}}
	sub2, err := wamqp.NewSubscriber(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	if err := sub2.SubscribeInitialize(thread.RoutingKeyPrompt); err != nil {
		t.Fatal(err)
	}
	if !e.routed(thread.RoutingKeyPrompt) {
		t.Errorf("amqp.TopologyBuilder did not bind %s to agent.thread.*", queue)
	}
}

// pythonPrompt is an agent.thread.prompt body exactly as the Python
// publisher writes it: compact JSON, "+00:00" offset, explicit nulls, an
// agent context.
func pythonPrompt(id uuid.UUID, text string) []byte {
	return []byte(`{"event_id":"` + id.String() + `","event_type":"agent.thread.prompt","timestamp":"2026-01-29T10:00:00.123456+00:00","version":"1.0.0","source":{"host":"127.0.0.1","type":"manual","app":"http-client","meta":null},"correlation_ids":[],"agent_context":{"type":"claude-code","name":"Code Analyzer","system_prompt":null,"instance_id":null,"mcp_servers":null,"file_references":null,"url_references":null,"code_state":null,"checkpoint_id":null,"meta":null},"payload":{"provider":"anthropic","model":"claude-sonnet-4","prompt":"` + text + `","project":"bloodbank","working_dir":null,"domain":null,"tags":[]}}`)
}

// rabbitEnv is the app's settings on the test broker with an exchange of
// the test's own, a raw amqp091 connection standing in for the Python
// services, and a queue that collects every agent.thread.response.
type rabbitEnv struct {
	t         *testing.T
	cfg       config
	raw       *amqp091.Connection
	responses <-chan amqp091.Delivery
	// answered holds the responses received so far, by prompt id.
	answered map[uuid.UUID]amqp091.Delivery
	app      *app
	stop     func()
}

const waitFor = 30 * time.Second

func newRabbitEnv(t *testing.T) *rabbitEnv {
	t.Helper()
	e := &rabbitEnv{t: t, answered: map[uuid.UUID]amqp091.Delivery{}, cfg: config{
		RabbitURL: testenv.RabbitURL(t),
		Exchange:  "bb.test.examples.wamqp." + uuid.NewString()[:8],
		Prefetch:  10,
	}}
	raw, err := amqp091.Dial(e.cfg.RabbitURL)
	if err != nil {
		t.Fatal(err)
	}
	e.raw = raw
	t.Cleanup(func() {
		ch, err := raw.Channel()
		if err == nil {
			for _, q := range []string{e.cfg.serviceQueue(), e.cfg.poisonQueue()} {
				if _, err := ch.QueueDelete(q, false, false, false); err != nil {
					t.Errorf("cannot delete queue %s: %v", q, err)
				}
			}
			err = ch.ExchangeDelete(e.cfg.Exchange, false, false)
		}
		if err != nil {
			t.Errorf("cannot clean up exchange %s: %v", e.cfg.Exchange, err)
		}
		_ = raw.Close()
	})
	ch := e.channel()
	if err := (amqp.Topology{Exchange: e.cfg.Exchange}).DeclareExchange(ch); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, thread.RoutingKeyResponse, e.cfg.Exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	if e.responses, err = ch.Consume(q.Name, "", true, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// channel opens a channel on the raw connection, closed when the test ends.
func (e *rabbitEnv) channel() *amqp091.Channel {
	e.t.Helper()
	ch, err := e.raw.Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = ch.Close() })
	return ch
}

// start runs the app with agent ask and an in-process correlation store,
// which it returns, until stop or the end of the test.
func (e *rabbitEnv) start(ask agent) correlation.Store {
	e.t.Helper()
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = store.Close() })
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.app, err = newApp(e.cfg, rec, ask, extest.Logger(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.app.run(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("run: %v", err)
				}
			case <-time.After(waitFor):
				e.t.Errorf("the router did not stop within %s", waitFor)
			}
			_ = rec.Close(context.Background())
		})
	}
	e.t.Cleanup(e.stop)
	select {
	case <-e.app.router.Running():
	case err := <-done:
		e.t.Fatalf("run: %v", err)
	case <-time.After(waitFor):
		e.t.Fatalf("the router did not start within %s", waitFor)
	}
	return store
}

// publish publishes body under agent.thread.prompt exactly as the Python
// publisher does (persistent, application/json, utf-8, message_id) and
// waits for the broker's confirm.
func (e *rabbitEnv) publish(messageID string, body []byte) {
	e.t.Helper()
	ch := e.channel()
	if err := ch.Confirm(false); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := ch.PublishWithDeferredConfirmWithContext(ctx, e.cfg.Exchange, thread.RoutingKeyPrompt, false, false, amqp091.Publishing{
		ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp091.Persistent, MessageId: messageID, Body: body,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if ok, err := c.WaitContext(ctx); !ok || err != nil {
		e.t.Fatalf("the broker did not confirm: %v", err)
	}
}

// wantResponse waits for the response to prompt, and checks it as a Python
// consumer would read it.
func (e *rabbitEnv) wantResponse(prompt uuid.UUID, text string) {
	e.t.Helper()
	timeout := time.After(waitFor)
	for {
		if d, ok := e.answered[prompt]; ok {
			e.checkResponse(d, prompt, text)
			return
		}
		select {
		case d := <-e.responses:
			env, err := envelope.Decode(d.Body)
			if err != nil {
				e.t.Fatalf("a response a Python consumer cannot read: %v\n%s", err, d.Body)
			}
			if len(env.CorrelationIDs) != 1 {
				e.t.Fatalf("response correlation_ids = %v, want [the prompt's id]", env.CorrelationIDs)
			}
			if _, dup := e.answered[env.CorrelationIDs[0]]; dup {
				e.t.Errorf("prompt %s answered twice", env.CorrelationIDs[0])
			}
			e.answered[env.CorrelationIDs[0]] = d
		case <-timeout:
			e.t.Fatalf("no response to prompt %s within %s", prompt, waitFor)
		}
	}
}

func (e *rabbitEnv) checkResponse(d amqp091.Delivery, prompt uuid.UUID, text string) {
	e.t.Helper()
	env, err := envelope.Decode(d.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if d.ContentType != "application/json" || d.ContentEncoding != "utf-8" || d.DeliveryMode != amqp091.Persistent || d.MessageId != env.EventID.String() {
		e.t.Errorf("response properties %q %q %d message_id %q, want the wire contract's", d.ContentType, d.ContentEncoding, d.DeliveryMode, d.MessageId)
	}
	r, err := envelope.DecodePayload[thread.Response](env)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.Response != text || r.Provider != "anthropic" {
		e.t.Errorf("response %+v, want %q to prompt %s", r, text, prompt)
	}
	if env.AgentContext == nil || env.AgentContext.Name != "Code Analyzer" {
		e.t.Errorf("response agent_context = %+v, want the prompt's", env.AgentContext)
	}
}

// wantRecordedParents waits until the correlation graph links the response
// to prompt: the recorder writes after the publish returned, beside the bus.
func (e *rabbitEnv) wantRecordedParents(store correlation.Store, prompt uuid.UUID) {
	e.t.Helper()
	resp := envelope.DeterministicIDOf(thread.RoutingKeyResponse, envelope.StrField("prompt_id", prompt.String()))
	deadline := time.Now().Add(waitFor)
	for {
		parents, err := store.Parents(context.Background(), resp)
		if err != nil {
			e.t.Fatal(err)
		}
		if slices.Equal(parents, []uuid.UUID{prompt}) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("recorded parents of the response = %v, want [%s]", parents, prompt)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// parked takes n messages out of the poison queue, by message_id.
func (e *rabbitEnv) parked(n int) map[string]amqp091.Delivery {
	e.t.Helper()
	ch := e.channel()
	got := map[string]amqp091.Delivery{}
	deadline := time.Now().Add(waitFor)
	for len(got) < n {
		d, ok, err := ch.Get(e.cfg.poisonQueue(), true)
		if err != nil {
			e.t.Fatal(err)
		}
		if !ok {
			if time.Now().After(deadline) {
				e.t.Fatalf("%d messages parked within %s, want %d", len(got), waitFor, n)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if _, dup := got[d.MessageId]; dup {
			e.t.Errorf("message %s parked twice", d.MessageId)
		}
		got[d.MessageId] = d
	}
	return got
}

// inspect declares queue passively: how many messages are ready in it.
func (e *rabbitEnv) inspect(queue string) amqp091.Queue {
	e.t.Helper()
	q, err := e.channel().QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

// routed reports whether a message published under key on the exchange
// reaches a queue: the broker returns a mandatory message that reaches none.
func (e *rabbitEnv) routed(key string) bool {
	e.t.Helper()
	ch := e.channel()
	if err := ch.Confirm(false); err != nil {
		e.t.Fatal(err)
	}
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := ch.PublishWithDeferredConfirmWithContext(ctx, e.cfg.Exchange, key, true, false, amqp091.Publishing{Body: []byte("{}")})
	if err != nil {
		e.t.Fatal(err)
	}
	// The broker sends a return before the confirm of the same message.
	if ok, err := c.WaitContext(ctx); !ok || err != nil {
		e.t.Fatalf("the broker did not confirm: %v", err)
	}
	select {
	case <-returns:
		return false
	default:
		return true
	}
}
