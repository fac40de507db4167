package main_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// With BB_MAX_ROOT_TOKENS set, a prompt whose chain (written in Redis as
// the Python tracker writes it, no x-bb-root anywhere) has spent its root's
// budget is parked as runaway, naming the rule, the root and the numbers;
// a prompt of a fresh chain is answered; and the gateway's correlation
// answer carries the root's totals.
func TestRabbit_tokenBudgetParksCommandsOfASpentRoot(t *testing.T) {
	e := newRabbitEnv(t)
	poisonQueue := reliability.PoisonQueueName(e.serviceQueues("command_processor"))
	got := e.collectResponses()
	p := start(t, e.env("BB_MAX_ROOT_TOKENS=100")...)
	p.waitReady(30 * time.Second)

	ctx := context.Background()
	store, err := correlation.NewRedisStore(e.redis, correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// root → mid, as Python links them; then a response of an agent under
	// mid reporting 150 tokens, recorded without its root.
	root, mid, resp, spent, fresh := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	pre := correlation.DefaultKeyPrefix
	e.mu.Lock()
	e.keys = append(e.keys, pre+"forward:"+mid.String(), pre+"reverse:"+root.String(), pre+"forward:"+resp.String(),
		pre+"reverse:"+mid.String(), store.CostKey(root), pre+"reverse:"+resp.String(),
		middleware.DefaultDedupKeyPrefix+"command_processor:"+thread.RoutingKeyPrompt+":"+spent.String())
	e.mu.Unlock()
	e.forget(fresh, cqrs.SideEffectID(thread.RoutingKeyResponse, fresh, 0))
	python := fmt.Sprintf(`{"parent_event_ids":[%q],"created_at":"2026-01-29T10:00:00.123456+00:00","metadata":{}}`, root)
	if err := e.redis.Set(ctx, pre+"forward:"+mid.String(), python, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	e.redis.SAdd(ctx, pre+"reverse:"+root.String(), mid.String())
	if err := store.Record(ctx, correlation.Link{Child: resp, Parents: []uuid.UUID{mid},
		Cost: &correlation.Cost{Agent: "planner", TokensUsed: 150, DurationMS: 2500}}); err != nil {
		t.Fatal(err)
	}

	// The next prompt of that chain, as a Python agent publishes it.
	body := strings.Replace(string(pythonPrompt(spent, "once more")), `"correlation_ids":[]`, `"correlation_ids":["`+resp.String()+`"]`, 1)
	e.publishRaw(thread.RoutingKeyPrompt, spent.String(), []byte(body))
	if err := e.publishPrompts([]uuid.UUID{fresh}); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 15*time.Second, "the fresh prompt is answered", func(n int) bool { return n >= 1 })

	deadline := time.Now().Add(15 * time.Second)
	for e.depth(poisonQueue) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing parked in %s", poisonQueue)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ch := e.channel()
	defer ch.Close()
	d, ok, err := ch.Get(poisonQueue, false)
	if err != nil || !ok {
		t.Fatalf("cannot read %s: %v", poisonQueue, err)
	}
	h := func(k string) string { v, _ := d.Headers[k].(string); return v }
	want := fmt.Sprintf("rule root_tokens: root %s has spent 150 tokens, budget 100", root)
	if d.MessageId != spent.String() || h(middleware.HeaderPoisonKind) != "runaway" || !strings.Contains(h(middleware.HeaderPoisonReason), want) {
		t.Errorf("parked %s with kind %q, reason %q; want %s as runaway: %q", d.MessageId, h(middleware.HeaderPoisonKind), h(middleware.HeaderPoisonReason), spent, want)
	}
	if n := got.count(); n != 1 {
		t.Errorf("%d responses, want 1: the parked prompt must not be answered", n)
	}

	// The gateway answers the totals of the chain with its trace.
	status, answer, err := p.get("/events/" + resp.String() + "/correlation")
	if err != nil || status != 200 {
		t.Fatalf("GET correlation: %d, %v", status, err)
	}
	cost, _ := answer["cost"].(map[string]any)
	agents, _ := cost["by_agent"].(map[string]any)
	if cost["root"] != root.String() || cost["tokens_used"] != 150.0 || cost["duration_ms"] != 2500.0 || agents["planner"] == nil {
		t.Errorf("correlation answer cost = %v, want root %s with 150 tokens and 2500 ms by planner", answer["cost"], root)
	}
	if answer["event_id"] != resp.String() {
		t.Errorf("correlation answer lost its dump fields: %v", answer)
	}
}
