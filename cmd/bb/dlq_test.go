package main_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// dlq is a service of the test's own, on its own exchange: its service
// queue and its poison queue, both deleted when the test ends.
type dlq struct {
	*rabbit
	service, serviceQueue, poisonQueue string
}

func newDLQ(t *testing.T) *dlq {
	t.Helper()
	r := newRabbit(t)
	d := &dlq{rabbit: r, service: "svc_" + uuid.NewString()[:8]}
	d.serviceQueue = bus.ServiceQueueName(r.exchange, d.service)
	d.poisonQueue = reliability.PoisonQueueName(d.serviceQueue)
	for _, q := range []string{d.serviceQueue, d.poisonQueue} {
		// The flags the bus declares them with: durable, no arguments.
		if _, err := r.ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = r.ch.QueueDelete(q, false, false, false) })
	}
	return d
}

// env points bb at the exchange, and at the service through SERVICE_NAME.
func (d *dlq) env() []string { return append(d.rabbit.env(), "SERVICE_NAME="+d.service) }

// parked describes a message as the poison middleware parks it.
type parked struct {
	id, routingKey, kind, handler, reason string
	lastFailure                           time.Time
	body                                  []byte
}

// park puts a message in the poison queue with the headers Poison writes,
// plus a producer's traceparent and a retry header.
func (d *dlq) park(p parked) {
	d.t.Helper()
	headers := amqp091.Table{
		middleware.HeaderPoisonReason:       p.reason,
		middleware.HeaderPoisonKind:         p.kind,
		middleware.HeaderPoisonHandler:      p.handler,
		middleware.HeaderPoisonService:      d.service,
		middleware.HeaderPoisonAttempts:     "3",
		middleware.HeaderPoisonFirstFailure: envelope.FormatTimestamp(p.lastFailure.Add(-time.Minute)),
		middleware.HeaderPoisonLastFailure:  envelope.FormatTimestamp(p.lastFailure),
		envelope.MetaOriginalRoutingKey:     p.routingKey,
		middleware.HeaderAttempts:           "3",
		middleware.HeaderTraceParent:        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	ch, err := d.conn.Channel()
	if err != nil {
		d.t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		d.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", d.poisonQueue, true, false, amqp091.Publishing{
		MessageId: p.id, ContentType: "application/json", DeliveryMode: amqp091.Persistent, Headers: headers, Body: p.body,
	})
	if err != nil {
		d.t.Fatal(err)
	}
	if ok, err := c.WaitContext(ctx); !ok || err != nil {
		d.t.Fatalf("the broker did not confirm the parking: %v", err)
	}
}

func (d *dlq) depth(queue string) int {
	d.t.Helper()
	ch, err := d.conn.Channel()
	if err != nil {
		d.t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	return q.Messages
}

// three parks an invalid prompt two hours ago, a malformed transcript ten
// minutes ago and a failed prompt now, in that order.
func (d *dlq) three() (invalid, malformed, failed parked) {
	now := time.Now()
	invalid = parked{uuid.NewString(), "agent.thread.prompt", "invalid", "agent.thread.prompt", "payload.prompt: required",
		now.Add(-2 * time.Hour), []byte(`{"event_type":"agent.thread.prompt","payload":{"provider":"x"}}`)}
	malformed = parked{"not-a-uuid-" + uuid.NewString()[:8], "fireflies.transcript.ready", "malformed", "rag_ingest",
		"body is not JSON: invalid character 'h' in literal true", now.Add(-10 * time.Minute), []byte("this is not JSON")}
	failed = parked{uuid.NewString(), "agent.thread.prompt", "handler", "agent.thread.prompt",
		"vector store unavailable: " + strings.Repeat("dial tcp 10.0.0.7:6333: connection refused; ", 5), now, []byte(`{"ok":"but failed"}`)}
	for _, p := range []parked{invalid, malformed, failed} {
		d.park(p)
	}
	return invalid, malformed, failed
}

func TestDLQ_listShowsParkedMessagesAndFilters(t *testing.T) {
	d := newDLQ(t)
	invalid, malformed, failed := d.three()

	res := mustSucceed(t, run{env: d.env()}, "dlq", "list")
	ls := lines(res.stdout)
	if len(ls) != 4 || !strings.HasPrefix(ls[0], "EVENT ID") {
		t.Fatalf("want a header and three lines\n%s", res)
	}
	for i, p := range []parked{invalid, malformed, failed} {
		for _, want := range []string{p.id, p.routingKey, p.kind, p.handler, "3", p.lastFailure.UTC().Format(time.RFC3339)} {
			if !strings.Contains(ls[i+1], want) {
				t.Errorf("line %d lacks %q: %s", i+1, want, ls[i+1])
			}
		}
	}
	if !strings.Contains(ls[3], "vector store unavailable") || !strings.Contains(ls[3], "…") || len(ls[3]) > 300 {
		t.Errorf("the long reason is not shortened: %s", ls[3])
	}
	if !strings.Contains(res.stderr, "3 parked messages in "+d.poisonQueue) {
		t.Errorf("no summary on stderr\n%s", res)
	}

	for _, tc := range []struct {
		args []string
		want []parked
	}{
		{[]string{"--routing-key", "agent.#"}, []parked{invalid, failed}},
		{[]string{"--routing-key", "fireflies.*.ready"}, []parked{malformed}},
		{[]string{"--kind", "malformed"}, []parked{malformed}},
		{[]string{"--handler", "agent.thread.prompt", "--kind", "handler"}, []parked{failed}},
		{[]string{"--since", "1h"}, []parked{malformed, failed}},
		{[]string{"--until", "1h"}, []parked{invalid}},
		{[]string{"--since", time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339), "--until", "5m"}, []parked{invalid, malformed}},
		{[]string{"--limit", "1"}, []parked{invalid}},
		{[]string{"--kind", "panic"}, nil},
	} {
		res := mustSucceed(t, run{env: d.env()}, append([]string{"dlq", "list", "--json"}, tc.args...)...)
		var got []string
		for _, l := range lines(res.stdout) {
			var m struct {
				EventID string `json:"event_id"`
			}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%v: not a JSON line: %v\n%s", tc.args, err, l)
			}
			got = append(got, m.EventID)
		}
		var want []string
		for _, p := range tc.want {
			want = append(want, p.id)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("list %v = %v, want %v", tc.args, got, want)
		}
	}

	res = mustSucceed(t, run{env: d.env()}, "dlq", "list", "--json", "--kind", "malformed")
	var m map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &m); err != nil {
		t.Fatal(err)
	}
	headers, _ := m["headers"].(map[string]any)
	if m["body"] != string(malformed.body) || m["reason"] != malformed.reason || m["service"] != d.service || m["attempts"] != 3.0 ||
		headers[middleware.HeaderTraceParent] == nil {
		t.Errorf("JSON line = %v", m)
	}
	if n := d.depth(d.poisonQueue); n != 3 {
		t.Errorf("%d messages left in the poison queue after listing, want all 3", n)
	}
}

func TestDLQ_showPrintsHeadersAndTheBodyByteForByte(t *testing.T) {
	d := newDLQ(t)
	body := []byte("{\"prompt\": \"naïve <b>café</b>\",\n  \"n\": 1e400}") // no final newline
	p := parked{uuid.NewString(), "agent.thread.prompt", "invalid", "agent.thread.prompt", "payload.n: out of range", time.Now(), body}
	d.park(p)

	res := mustSucceed(t, run{env: d.env()}, "dlq", "show", p.id)
	for _, want := range []string{"event_id: " + p.id, "queue: " + d.poisonQueue, "  bb_poison_reason: payload.n: out of range",
		"  bb_poison_kind: invalid", "  bb_original_routing_key: agent.thread.prompt", "  traceparent: 00-4bf92f", "body ("} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("show lacks %q\n%s", want, res)
		}
	}
	if !strings.HasSuffix(res.stdout, "):\n"+string(body)+"\n") {
		t.Errorf("show does not end with the body\n%s", res)
	}
	res = mustSucceed(t, run{env: d.env()}, "dlq", "show", p.id, "--body")
	if res.stdout != string(body) {
		t.Errorf("show --body = %q, want the body byte for byte %q", res.stdout, body)
	}

	res = bb(t, run{env: d.env()}, "dlq", "show", uuid.NewString())
	if res.code != 1 || !strings.Contains(res.stderr, "no parked message") {
		t.Errorf("show of an id not parked: want exit 1 saying so\n%s", res)
	}
	res = bb(t, run{env: d.rabbit.env()}, "dlq", "list", "--service", "no_such_service")
	if res.code != 1 || !strings.Contains(res.stderr, "does not exist") || !strings.Contains(res.stderr, "--service") {
		t.Errorf("list of a service without a poison queue: want exit 1 naming --service\n%s", res)
	}
}

func TestDLQ_replaySendsMessagesBackToTheirService(t *testing.T) {
	d := newDLQ(t)
	invalid, malformed, failed := d.three()

	res := mustSucceed(t, run{env: d.env()}, "dlq", "replay", invalid.id)
	if ls := lines(res.stdout); len(ls) != 1 || !strings.Contains(ls[0], invalid.id) || !strings.Contains(ls[0], d.serviceQueue) {
		t.Errorf("want one line saying what was replayed where\n%s", res)
	}
	got := d.get(d.serviceQueue)
	if got.MessageId != invalid.id || string(got.Body) != string(invalid.body) {
		t.Errorf("replayed %s %q, want %s %q", got.MessageId, got.Body, invalid.id, invalid.body)
	}
	if got.Headers[envelope.MetaTargetHandler] != invalid.handler || got.Headers[envelope.MetaOriginalRoutingKey] != invalid.routingKey ||
		got.Headers[middleware.HeaderTraceParent] == nil {
		t.Errorf("replayed headers %v: want the handler, the routing key and the producer's traceparent", got.Headers)
	}
	for k := range got.Headers {
		if strings.HasPrefix(k, "bb_poison_") || k == middleware.HeaderAttempts {
			t.Errorf("replayed with header %s: the attempt count and the poison headers must go", k)
		}
	}

	res = mustSucceed(t, run{env: d.env()}, "dlq", "replay", "--all", "--kind", "malformed")
	if ls := lines(res.stdout); len(ls) != 1 || !strings.Contains(ls[0], malformed.id) {
		t.Errorf("replay --all --kind malformed: want the malformed one\n%s", res)
	}
	if got := d.get(d.serviceQueue); got.MessageId != malformed.id || string(got.Body) != string(malformed.body) {
		t.Errorf("replayed %s %q", got.MessageId, got.Body)
	}

	res = bb(t, run{env: d.env()}, "dlq", "replay", invalid.id)
	if res.code != 1 || !strings.Contains(res.stderr, "not parked") || !strings.Contains(res.stderr, invalid.id) {
		t.Errorf("replay of an id no longer parked: want exit 1 naming it\n%s", res)
	}
	if n := d.depth(d.poisonQueue); n != 1 {
		t.Errorf("%d messages left parked, want 1 (%s)", n, failed.id)
	}
	if n := d.depth(d.serviceQueue); n != 0 {
		t.Errorf("%d unexpected messages in the service queue", n)
	}
}

func TestDLQ_purgeNeedsConfirmation(t *testing.T) {
	d := newDLQ(t)
	d.three()

	res := bb(t, run{env: d.env(), stdin: "yes\n"}, "dlq", "purge")
	if res.code != 1 || !strings.Contains(res.stderr, "refusing to purge") || !strings.Contains(res.stderr, "--yes") {
		t.Errorf("purge without --yes and without a terminal: want exit 1 saying so\n%s", res)
	}
	if n := d.depth(d.poisonQueue); n != 3 {
		t.Fatalf("%d messages left after a refused purge, want 3", n)
	}
	res = mustSucceed(t, run{env: d.env()}, "dlq", "purge", "--yes", "--kind", "invalid")
	if !strings.Contains(res.stdout, "purged 1 message from "+d.poisonQueue) {
		t.Errorf("purge --kind invalid\n%s", res)
	}
	res = mustSucceed(t, run{env: d.env()}, "dlq", "purge", "--yes")
	if !strings.Contains(res.stdout, "purged 2 messages") {
		t.Errorf("purge --yes\n%s", res)
	}
	if n := d.depth(d.poisonQueue); n != 0 {
		t.Errorf("%d messages left after purge --yes", n)
	}
}

// A replayed message that fails again is parked again while the replay
// still reads the poison queue; it is replayed once all the same, not
// over and over.
func TestDLQ_replayOfMessagesThatFailAgainRunsOnce(t *testing.T) {
	d := newDLQ(t)
	invalid, malformed, failed := d.three()
	// A service that parks everything it gets, at once.
	ch, err := d.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	deliveries, err := ch.Consume(d.serviceQueue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for del := range deliveries {
			_ = ch.PublishWithContext(context.Background(), "", d.poisonQueue, false, false, amqp091.Publishing{
				MessageId: del.MessageId, Headers: del.Headers, Body: del.Body, DeliveryMode: amqp091.Persistent})
			_ = del.Ack(false)
		}
	}()

	res := mustSucceed(t, run{env: d.env()}, "dlq", "replay", "--all")
	ls := lines(res.stdout)
	if len(ls) != 3 {
		t.Fatalf("want three lines, one per message replayed\n%s", res)
	}
	for i, p := range []parked{invalid, malformed, failed} {
		if !strings.Contains(ls[i], p.id) {
			t.Errorf("line %d does not name %s: %s", i, p.id, ls[i])
		}
	}
	res = mustSucceed(t, run{env: d.env()}, "dlq", "replay", failed.id)
	if ls := lines(res.stdout); len(ls) != 1 {
		t.Errorf("want one line\n%s", res)
	}
}
