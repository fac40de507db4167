package middleware_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// guardRedis is a client of the real Redis and a key prefix of the test's
// own, whose keys are deleted when the test ends.
func guardRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: testenv.Redis(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		if testenv.Required() {
			t.Fatalf("redis does not answer PING: %v", err)
		}
		t.Skipf("redis does not answer PING: %v", err)
	}
	prefix := "bbtest:" + uuid.NewString() + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	return client, prefix
}

// TestGuard_rabbit_pingPongAgentsStopWithinBudget runs two Go agents that
// answer each other forever, each a service of its own with the default
// stack and settings: the exchange stops by itself, and the parked message
// says why.
func TestGuard_rabbit_pingPongAgentsStopWithinBudget(t *testing.T) {
	client, prefix := guardRedis(t)
	r := relNewRabbit(t, nil)
	counter := middleware.NewRedisDescendantCounter(client, prefix+"descendants:", time.Minute)
	store, err := correlation.NewRedisStore(client, correlation.RedisConfig{KeyPrefix: prefix + "correlation:"})
	if err != nil {
		t.Fatal(err)
	}

	var handled atomic.Int64
	agent := func(service, pattern, answer, app string) *reliability.Stack {
		svc, err := r.bus.NewService(service)
		if err != nil {
			t.Fatal(err)
		}
		rel, err := reliability.Use(context.Background(), r.bus, svc, reliability.Config{
			RedeliveryDelays: relTestDelays, GuardLinks: store, GuardCounter: counter,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Handle(svc, "answer", pattern, func(ctx context.Context, ev bus.Event[map[string]any]) error {
			handled.Add(1)
			env, err := envelope.New(answer, map[string]any{"provider": "x", "prompt": "again", "response": "again"},
				envelope.WithSource(envelope.Source{Host: "test", Type: envelope.TriggerAgent, App: app}))
			if err != nil {
				return err
			}
			return r.bus.Publish(ctx, env)
		}); err != nil {
			t.Fatal(err)
		}
		relRunService(t, svc)
		return rel
	}
	// The second agent's queues are the test's to delete too.
	other := r.service + "_b"
	t.Cleanup(func() { deleteServiceQueues(t, r.url, bus.ServiceQueueName(r.exchange, other)) })
	a := agent(r.service, "agent.thread.prompt", "agent.thread.response", "agent-a")
	b := agent(other, "agent.thread.response", "agent.thread.prompt", "agent-b")

	first, err := envelope.New("agent.thread.prompt", map[string]any{"provider": "x", "prompt": "start"},
		envelope.WithSource(envelope.Source{Host: "test", Type: envelope.TriggerManual, App: "test"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.bus.Publish(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	parked := func() uint64 { return a.Poison.Stats().Parked + b.Poison.Stats().Parked }
	relEventually(t, 20*time.Second, "the exchange parked", func() bool { return parked() == 1 })
	stopped := handled.Load()
	time.Sleep(500 * time.Millisecond) // nothing more may come
	if n := handled.Load(); n != stopped || n > int64(r.cfg.MaxDepth) {
		t.Errorf("the agents handled %d events (%d when parked), want the exchange stopped within BB_MAX_DEPTH=%d", n, stopped, r.cfg.MaxDepth)
	}
	t.Logf("ping-pong stopped after %d events", stopped)

	var found []reliability.ParkedMessage
	for _, svc := range []string{r.service, other} {
		ms, err := reliability.NewPoisonQueue(r.bus, svc).List(context.Background(), reliability.PoisonFilter{Kind: envelope.KindRunaway})
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, ms...)
	}
	if len(found) != 1 {
		t.Fatalf("%d runaway messages parked, want 1", len(found))
	}
	m := found[0]
	for _, want := range []string{"rule repeats", "BB_MAX_REPEATS=8", first.EventID.String()} {
		if !strings.Contains(m.Reason, want) {
			t.Errorf("parked reason %q does not say %q", m.Reason, want)
		}
	}
	if m.Headers[envelope.MetaRoot] != first.EventID.String() || m.Headers[envelope.MetaDepth] == "" {
		t.Errorf("parked headers %v, want its depth and root %s", m.Headers, first.EventID)
	}

	// Re-driven on purpose: the parked event starts a chain of its own with
	// a fresh budget, which runs away in its turn and is parked again,
	// under itself as the root.
	q := reliability.NewPoisonQueue(r.bus, m.Service)
	if done, err := q.Replay(context.Background(), reliability.PoisonFilter{Kind: envelope.KindRunaway}); err != nil || len(done) != 1 {
		t.Fatalf("Replay = %d, %v; want the runaway replayed", len(done), err)
	}
	relEventually(t, 20*time.Second, "the re-driven chain parked", func() bool { return parked() == 2 })
	var again []reliability.ParkedMessage
	for _, svc := range []string{r.service, other} {
		ms, err := reliability.NewPoisonQueue(r.bus, svc).List(context.Background(), reliability.PoisonFilter{Kind: envelope.KindRunaway})
		if err != nil {
			t.Fatal(err)
		}
		again = append(again, ms...)
	}
	if len(again) != 1 || again[0].Headers[envelope.MetaRoot] != m.EventID || handled.Load() <= stopped {
		t.Errorf("after the replay: %d parked (root %v), %d handled; want the replayed event as the new root", len(again), again, handled.Load())
	}
}

// TestGuard_rabbit_pythonChain40Deep_nextEventParkedByDepth writes a chain
// of 40 links in Redis as Python's tracker does (no depth recorded), then
// publishes the next event as Python does: no headers. The guard places it
// through Redis and parks it by depth.
func TestGuard_rabbit_pythonChain40Deep_nextEventParkedByDepth(t *testing.T) {
	client, prefix := guardRedis(t)
	r := relNewRabbit(t, nil)
	store, err := correlation.NewRedisStore(client, correlation.RedisConfig{KeyPrefix: prefix + "correlation:"})
	if err != nil {
		t.Fatal(err)
	}
	chain := pythonChain(t, store, 40)

	svc, rel := r.newService(reliability.Config{GuardLinks: store})
	var ran atomic.Int64
	if err := svc.HandleMessage("consume", "agent.thread.prompt", func(*message.Message) error { ran.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)

	id := uuid.NewString()
	body := fmt.Sprintf(`{"event_id":%q,"event_type":"agent.thread.prompt","timestamp":"2026-01-29T10:00:00.123456+00:00","version":"1.0.0",`+
		`"source":{"host":"py","type":"agent","app":"python-agent","meta":null},"correlation_ids":[%q],"agent_context":null,`+
		`"payload":{"provider":"x","prompt":"next","tags":[]}}`, id, chain[40])
	r.publishRaw(r.raw(), "agent.thread.prompt", []byte(body), id)
	relEventually(t, 10*time.Second, "the event parked", func() bool { return rel.Poison.Stats().Parked == 1 })
	if ran.Load() != 0 {
		t.Error("the handler ran on an event beyond the depth budget")
	}
	m, err := reliability.NewPoisonQueue(r.bus, "").Show(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != envelope.KindRunaway || !strings.Contains(m.Reason, "rule depth") || !strings.Contains(m.Reason, "BB_MAX_DEPTH=32") {
		t.Errorf("parked as %s: %q, want kind runaway by the depth rule", m.Kind, m.Reason)
	}
	if s := rel.Stats().Guard; s.ParkedDepth != 1 || s.Lookups != 1 {
		t.Errorf("guard stats %+v, want one placed through Redis and parked by depth", s)
	}
}

// deleteServiceQueues deletes a service queue with its poison and delay queues.
func deleteServiceQueues(t *testing.T, url, sq string) {
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Logf("cannot clean up %s: %v", sq, err)
		return
	}
	defer conn.Close()
	queues := []string{sq, reliability.PoisonQueueName(sq)}
	for _, d := range append(append([]time.Duration(nil), relTestDelays...), reliability.DefaultRedeliveryDelays...) {
		queues = append(queues, reliability.RetryQueueName(sq, d))
	}
	for _, q := range queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
}
