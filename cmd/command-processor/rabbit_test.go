package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// rabbitEnv is a test's own exchange on the real RabbitMQ, a raw amqp091
// connection standing in for the Python services, and the real Redis.
// The exchange, the queues and the correlation keys the test names are
// removed when it ends.
type rabbitEnv struct {
	t         *testing.T
	url       string
	redisAddr string
	exchange  string
	raw       *amqp091.Connection
	redis     redis.UniversalClient

	mu     sync.Mutex
	queues []string
	keys   []string
}

func newRabbitEnv(t *testing.T) *rabbitEnv {
	t.Helper()
	e := &rabbitEnv{t: t, url: testenv.RabbitURL(t), redisAddr: testenv.Redis(t), exchange: "bbtest." + uuid.NewString()[:8]}
	raw, err := amqp091.Dial(e.url)
	if err != nil {
		t.Fatal(err)
	}
	e.raw = raw
	host, port, _ := net.SplitHostPort(e.redisAddr)
	p, _ := strconv.Atoi(port)
	if e.redis, err = correlation.NewUniversalClient(correlation.Settings{Host: host, Port: p}); err != nil {
		t.Fatal(err)
	}
	ch := e.channel()
	defer ch.Close()
	if err := ch.ExchangeDeclare(e.exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := raw.Channel(); err == nil {
			e.mu.Lock()
			for _, q := range e.queues {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
			e.mu.Unlock()
			_ = ch.ExchangeDelete(e.exchange, false, false)
			_ = ch.Close()
		}
		_ = raw.Close()
		e.mu.Lock()
		for i := 0; i < len(e.keys); i += 500 {
			_ = e.redis.Del(context.Background(), e.keys[i:min(i+500, len(e.keys))]...).Err()
		}
		e.mu.Unlock()
		_ = e.redis.Close()
	})
	return e
}

func (e *rabbitEnv) env(extra ...string) []string {
	host, port, _ := net.SplitHostPort(e.redisAddr)
	return append([]string{"RABBIT_URL=" + e.url, "EXCHANGE_NAME=" + e.exchange, "REDIS_HOST=" + host, "REDIS_PORT=" + port}, extra...)
}

func (e *rabbitEnv) channel() *amqp091.Channel {
	e.t.Helper()
	ch, err := e.raw.Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	return ch
}

func (e *rabbitEnv) queue(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.exchange + "." + name
	e.queues = append(e.queues, q)
	return q
}

// serviceQueues names the queues the processor declares for a service,
// to be deleted at the end, and returns the service queue: the queue
// itself, its poison queue and its delay queues.
func (e *rabbitEnv) serviceQueues(service string) string {
	q := e.queue(service)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queues = append(e.queues, reliability.PoisonQueueName(q))
	for _, d := range reliability.DefaultRedeliveryDelays {
		e.queues = append(e.queues, reliability.RetryQueueName(q, d))
	}
	return q
}

// forget deletes the correlation keys of a prompt and its response, and
// the dedup key of the prompt.
func (e *rabbitEnv) forget(prompt, response uuid.UUID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys = append(e.keys, correlation.DefaultKeyPrefix+"reverse:"+prompt.String(), correlation.DefaultKeyPrefix+"forward:"+response.String(),
		middleware.DefaultDedupKeyPrefix+"command_processor:"+thread.RoutingKeyPrompt+":"+prompt.String())
}

func (e *rabbitEnv) depth(queue string) int {
	e.t.Helper()
	ch := e.channel()
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return q.Messages
}

// responses collects every agent.thread.response published on the exchange.
type responses struct {
	mu       sync.Mutex
	total    int
	byPrompt map[string][]string // prompt id → response ids, in arrival order
	changed  chan struct{}
}

func (e *rabbitEnv) collectResponses() *responses {
	e.t.Helper()
	q := e.queue("observer")
	ch := e.channel()
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		e.t.Fatal(err)
	}
	if err := ch.QueueBind(q, thread.RoutingKeyResponse, e.exchange, false, nil); err != nil {
		e.t.Fatal(err)
	}
	deliveries, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &responses{byPrompt: map[string][]string{}, changed: make(chan struct{})}
	go func() {
		for d := range deliveries {
			var body struct {
				EventID        string   `json:"event_id"`
				CorrelationIDs []string `json:"correlation_ids"`
			}
			_ = json.Unmarshal(d.Body, &body)
			r.mu.Lock()
			r.total++
			if len(body.CorrelationIDs) == 1 {
				r.byPrompt[body.CorrelationIDs[0]] = append(r.byPrompt[body.CorrelationIDs[0]], body.EventID)
			}
			close(r.changed)
			r.changed = make(chan struct{})
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *responses) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// waitFor waits until cond holds, re-checking on every response, or fails
// after timeout.
func (r *responses) waitFor(t *testing.T, timeout time.Duration, what string, cond func(total int) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		total, changed := r.total, r.changed
		r.mu.Unlock()
		if cond(total) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("after %s: %s (%d responses)", timeout, what, total)
		}
	}
}

// pythonPrompt is an agent.thread.prompt body as the Python publisher
// writes it: compact JSON, "+00:00" offset, explicit nulls.
func pythonPrompt(id uuid.UUID, text string) []byte {
	return []byte(`{"event_id":"` + id.String() + `","event_type":"agent.thread.prompt","timestamp":"2026-01-29T10:00:00.123456+00:00","version":"1.0.0","source":{"host":"127.0.0.1","type":"manual","app":"http-client","meta":null},"correlation_ids":[],"agent_context":null,"payload":{"provider":"anthropic","model":"claude-sonnet-4","prompt":"` + text + `","project":null,"working_dir":null,"domain":null,"tags":[]}}`)
}

// publishPrompts publishes one prompt per id as the Python publisher does
// (persistent, message_id, confirms), all in flight at once, and returns
// once the broker confirmed them all.
func (e *rabbitEnv) publishPrompts(ids []uuid.UUID) error {
	ch, err := e.raw.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	confirms := make([]*amqp091.DeferredConfirmation, len(ids))
	for i, id := range ids {
		if confirms[i], err = ch.PublishWithDeferredConfirmWithContext(ctx, e.exchange, thread.RoutingKeyPrompt, false, false, amqp091.Publishing{
			ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp091.Persistent,
			MessageId: id.String(), Body: pythonPrompt(id, "prompt "+strconv.Itoa(i)),
		}); err != nil {
			return err
		}
	}
	for _, c := range confirms {
		if ok, err := c.WaitContext(ctx); !ok || err != nil {
			return err
		}
	}
	return nil
}

// TestRabbit_sigtermDuringBurstLosesNothing sends SIGTERM while a burst of
// prompts is being executed (each takes 20 ms, ten at a time), then starts
// the processor again: every prompt is answered exactly once. A command in
// flight at SIGTERM that was lost would leave a prompt unanswered; one that
// was nacked after it published would be answered twice.
func TestRabbit_sigtermDuringBurstLosesNothing(t *testing.T) {
	const burst = 200
	e := newRabbitEnv(t)
	serviceQueue := e.serviceQueues("command_processor")
	got := e.collectResponses()
	env := e.env("BB_ECHO_DELAY=20ms", "BB_DRAIN_TIMEOUT=30s")

	first := start(t, env...)
	first.waitReady(30 * time.Second)
	ids := make([]uuid.UUID, burst)
	for i := range ids {
		ids[i] = uuid.New()
		e.forget(ids[i], cqrs.SideEffectID(thread.RoutingKeyResponse, ids[i], 0))
	}
	published := make(chan error, 1)
	go func() { published <- e.publishPrompts(ids) }()

	got.waitFor(t, 30*time.Second, "the first responses arrive", func(n int) bool { return n >= 20 })
	first.signal(syscall.SIGTERM)
	if code := first.exit(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	left := e.depth(serviceQueue)
	got.waitFor(t, 15*time.Second, "every prompt is answered or still queued", func(n int) bool { return n+left == burst })
	answered := got.count()
	if answered == burst || left == 0 {
		t.Fatalf("all %d prompts were answered before SIGTERM took effect: the test did not interrupt the burst", burst)
	}
	if n := first.count("command", outcome("executed")); n != answered {
		t.Errorf("the first run executed %d commands but %d responses arrived", n, answered)
	}
	if n := first.count("command", func(l map[string]any) bool { return l["outcome"] != "executed" }); n != 0 {
		t.Errorf("%d commands did not execute cleanly in the first run", n)
	}
	if n := first.count("drain timeout: requeueing deliveries still in flight", nil); n != 0 {
		t.Error("the drain timed out: in-flight commands were requeued")
	}
	t.Logf("SIGTERM after %d of %d prompts were answered; %d left in the queue", answered, burst, left)

	second := start(t, env...)
	got.waitFor(t, 60*time.Second, "every prompt is answered", func(n int) bool { return n >= burst })
	second.signal(syscall.SIGTERM)
	if code := second.exit(60 * time.Second); code != 0 {
		t.Errorf("second run: exit code %d after SIGTERM, want 0", code)
	}
	if n := second.count("command", outcome("executed")); n != burst-answered {
		t.Errorf("the second run executed %d commands, want the %d left", n, burst-answered)
	}

	got.mu.Lock()
	total, byPrompt := got.total, got.byPrompt
	got.mu.Unlock()
	if total != burst {
		t.Errorf("%d responses for %d prompts: some prompt was executed twice", total, burst)
	}
	ctx := context.Background()
	pipe := e.redis.Pipeline()
	forwards := make([]*redis.StringCmd, burst)
	for i, id := range ids {
		want := cqrs.SideEffectID(thread.RoutingKeyResponse, id, 0).String()
		if r := byPrompt[id.String()]; len(r) != 1 || r[0] != want {
			t.Errorf("prompt %s answered by %v, want exactly [%s]", id, r, want)
		}
		forwards[i] = pipe.Get(ctx, correlation.DefaultKeyPrefix+"forward:"+want)
	}
	_, _ = pipe.Exec(ctx)
	for i, f := range forwards {
		var link struct {
			Parents []string `json:"parent_event_ids"`
		}
		if err := json.Unmarshal([]byte(f.Val()), &link); err != nil || len(link.Parents) != 1 || link.Parents[0] != ids[i].String() {
			t.Errorf("link of the response to %s = %q (%v)", ids[i], f.Val(), f.Err())
			break
		}
	}
	if n := e.depth(serviceQueue); n != 0 {
		t.Errorf("%d messages left in %s", n, serviceQueue)
	}
}

func TestRabbit_readyzSaysRedisIsUnreachableWhileCommandsStillRun(t *testing.T) {
	e := newRabbitEnv(t)
	e.serviceQueues("command_processor")
	got := e.collectResponses()
	p := start(t, append(e.env(), "REDIS_PORT="+freePort(t))...)

	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := p.get("/readyz")
		checks, _ := body["checks"].(map[string]any)
		if err == nil && checks["consuming"] == "ok" {
			if code != http.StatusServiceUnavailable || body["ok"] != false || checks["broker"] != "ok" || checks["redis"] == "ok" {
				t.Errorf("GET /readyz = %d %v, want 503 naming Redis", code, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never consuming: %d %v %v", code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body, err := p.get("/healthz"); err != nil || code != http.StatusOK || body["ok"] != true {
		t.Errorf("GET /healthz = %d %v %v, want 200 (alive)", code, body, err)
	}
	id := uuid.New()
	if err := e.publishPrompts([]uuid.UUID{id}); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 15*time.Second, "the prompt is answered without Redis", func(n int) bool { return n == 1 })
	p.signal(syscall.SIGINT)
	if code := p.exit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0", code)
	}
	if stopped := p.waitLog(time.Second, "command-processor stopped", nil); stopped["links_failed"] != 1.0 {
		t.Errorf("stopped line = %v, want the one link counted as failed", stopped)
	}
}

// publishRaw publishes body under key as a Python producer would, and
// waits for the broker's confirm.
func (e *rabbitEnv) publishRaw(key, messageID string, body []byte) {
	e.t.Helper()
	ch := e.channel()
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ch.PublishWithDeferredConfirmWithContext(ctx, e.exchange, key, false, false, amqp091.Publishing{
		ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp091.Persistent, MessageId: messageID, Body: body,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if ok, err := c.WaitContext(ctx); !ok || err != nil {
		e.t.Fatalf("the broker did not confirm: %v", err)
	}
}

// A command no attempt can fix (a prompt without its prompt, a body that is
// not JSON) is parked at once in the service's poison queue, body unchanged
// and the reason in its headers, while the good prompt behind it is
// answered; nothing is left in the service queue.
func TestRabbit_poisonedCommandsAreParkedWithTheirReason(t *testing.T) {
	e := newRabbitEnv(t)
	serviceQueue := e.serviceQueues("command_processor")
	poisonQueue := reliability.PoisonQueueName(serviceQueue)
	got := e.collectResponses()
	p := start(t, e.env()...)
	p.waitReady(30 * time.Second)

	invalidID, good := uuid.New(), uuid.New()
	e.forget(good, cqrs.SideEffectID(thread.RoutingKeyResponse, good, 0))
	invalid := []byte(`{"event_id":"` + invalidID.String() + `","event_type":"agent.thread.prompt","timestamp":"2026-01-29T10:00:00.123456+00:00","version":"1.0.0","source":{"host":"127.0.0.1","type":"manual","app":"http-client","meta":null},"correlation_ids":[],"agent_context":null,"payload":{"provider":"anthropic","model":null,"tags":[]}}`)
	malformed := []byte("this is not JSON")
	e.publishRaw(thread.RoutingKeyPrompt, invalidID.String(), invalid)
	e.publishRaw(thread.RoutingKeyPrompt, "not-an-envelope", malformed)
	if err := e.publishPrompts([]uuid.UUID{good}); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 15*time.Second, "the good prompt is answered", func(n int) bool { return n == 1 })

	deadline := time.Now().Add(15 * time.Second)
	for e.depth(poisonQueue) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages parked in %s, want 2", e.depth(poisonQueue), poisonQueue)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ch := e.channel()
	defer ch.Close()
	parked := map[string]amqp091.Delivery{}
	for range 2 {
		d, ok, err := ch.Get(poisonQueue, false)
		if err != nil || !ok {
			t.Fatalf("cannot read %s: %v", poisonQueue, err)
		}
		parked[d.MessageId] = d
	}
	for _, tc := range []struct {
		id, kind, reason string
		body             []byte
	}{
		{invalidID.String(), "invalid", "payload.prompt", invalid},
		{"not-an-envelope", "malformed", "JSON", malformed},
	} {
		d, ok := parked[tc.id]
		if !ok {
			t.Errorf("message %s was not parked", tc.id)
			continue
		}
		h := func(k string) string { v, _ := d.Headers[k].(string); return v }
		if h(middleware.HeaderPoisonKind) != tc.kind || !strings.Contains(h(middleware.HeaderPoisonReason), tc.reason) ||
			h(middleware.HeaderPoisonService) != "command_processor" || h(middleware.HeaderPoisonHandler) != thread.RoutingKeyPrompt ||
			h(envelope.MetaOriginalRoutingKey) != thread.RoutingKeyPrompt {
			t.Errorf("parked %s with headers %v, want kind %s and a reason naming %q", tc.id, d.Headers, tc.kind, tc.reason)
		}
		if !bytes.Equal(d.Body, tc.body) {
			t.Errorf("parked %s with body %q, want the original %q", tc.id, d.Body, tc.body)
		}
	}
	if n := e.depth(serviceQueue); n != 0 {
		t.Errorf("%d messages left in %s", n, serviceQueue)
	}
	if n := p.metric("bloodbank_parked_total"); n != 2 {
		t.Errorf("bloodbank_parked_total = %v, want 2", n)
	}
	p.signal(syscall.SIGTERM)
	if code := p.exit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if stopped := p.waitLog(time.Second, "command-processor stopped", nil); stopped["parked"] != 2.0 || stopped["executed"] != 1.0 {
		t.Errorf("stopped line = %v, want 2 parked and 1 executed", stopped)
	}
}

// An envelope posted to /events/custom reaches the broker as Python's
// gateway would publish it: what the body leaves out gets the model's
// defaults (a new event_id, the current timestamp, version 1.0.0, no
// correlation ids), and members Go does not know, at every level, travel on
// in their order.
func TestRabbit_customEnvelopeGetsPythonDefaultsAndKeepsUnknownMembers(t *testing.T) {
	e := newRabbitEnv(t)
	e.serviceQueues("command_processor")
	ch := e.channel()
	defer ch.Close()
	q := e.queue("relay")
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "relaytest.#", e.exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	p := start(t, e.env()...)
	p.waitReady(30 * time.Second)

	body := `{"event_type": "relaytest.thing.happened", "x_top": {"a": [1, 2]},
	  "source": {"host": "h", "type": "webhook", "x_src": "s"},
	  "agent_context": {"type": "letta", "x_ac": true, "code_state": {"branch": "main", "x_cs": null}},
	  "payload": {"n": 1}, "x_last": "z"}`
	code, answer, err := p.post("/events/custom", body)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST /events/custom = %d %v %v, want 200", code, answer, err)
	}
	var d amqp091.Delivery
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var ok bool
		if d, ok, err = ch.Get(q, true); err != nil || ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing reached the bound queue")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	env, err := envelope.Decode(d.Body)
	if err != nil {
		t.Fatalf("published body is not a v1 envelope: %v\n%s", err, d.Body)
	}
	if env.EventID.String() != answer["event_id"] || env.EventID.Version() != 4 || d.MessageId != env.EventID.String() {
		t.Errorf("event_id %s, message_id %s, answer %v: want one new uuid4", env.EventID, d.MessageId, answer)
	}
	if time.Since(env.Timestamp) > time.Minute || env.Version != "1.0.0" || len(env.CorrelationIDs) != 0 {
		t.Errorf("timestamp %v, version %q, correlation_ids %v: want now, 1.0.0, []", env.Timestamp, env.Version, env.CorrelationIDs)
	}
	for _, want := range []string{`"correlation_ids":[]`, `"type":"webhook","app":null,"meta":null,"x_src":"s"}`,
		`"last_commit_hash":null,"x_cs":null}`, `"meta":null,"x_ac":true}`, `"payload":{"n":1},"x_top":{"a":[1,2]},"x_last":"z"}`} {
		if !bytes.Contains(d.Body, []byte(want)) {
			t.Errorf("published body lacks %s:\n%s", want, d.Body)
		}
	}
}

// llm.prompt is a fact in Python, answered by whichever service runs the
// model; the processor leaves it alone, so it adds no second, echoed
// answer. A prompt published after it is answered, so the processor was
// consuming when the llm.prompt went by.
func TestRabbit_llmPromptIsNotAnswered(t *testing.T) {
	e := newRabbitEnv(t)
	e.serviceQueues("command_processor")
	ch := e.channel()
	defer ch.Close()
	q := e.queue("llm")
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "llm.#", e.exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	got := e.collectResponses()
	p := start(t, e.env()...)
	p.waitReady(30 * time.Second)

	llmPrompt := `{"event_id":"` + uuid.NewString() + `","event_type":"llm.prompt","timestamp":"2026-01-29T10:00:00.123456+00:00","version":"1.0.0","source":{"host":"h","type":"manual","app":null,"meta":null},"correlation_ids":[],"agent_context":null,"payload":{"provider":"openai","prompt":"hi"}}`
	e.publishRaw("llm.prompt", uuid.NewString(), []byte(llmPrompt))
	if err := e.publishPrompts([]uuid.UUID{uuid.New()}); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, 15*time.Second, "the agent.thread.prompt is answered", func(n int) bool { return n == 1 })
	p.signal(syscall.SIGTERM)
	if code := p.exit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	for {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if d.RoutingKey != "llm.prompt" {
			t.Errorf("the processor published %s in answer to llm.prompt: %s", d.RoutingKey, d.Body)
		}
	}
	if n := p.count("command", func(l map[string]any) bool { return l["type"] == "llm.prompt" }); n != 0 {
		t.Errorf("the processor executed llm.prompt %d time(s)", n)
	}
}
