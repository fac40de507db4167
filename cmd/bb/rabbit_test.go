package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/internal/testenv"
)

// rabbit is a test's own exchange on the real broker, with a raw amqp091
// connection to look at what bb did. The exchange and every queue the test
// declares are deleted when the test ends.
type rabbit struct {
	t        *testing.T
	url      string
	exchange string
	conn     *amqp091.Connection
	ch       *amqp091.Channel
}

func newRabbit(t *testing.T) *rabbit {
	t.Helper()
	url := testenv.RabbitURL(t)
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatalf("cannot connect to RabbitMQ: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	r := &rabbit{t: t, url: url, exchange: "bbtest." + uuid.NewString()[:8], conn: conn, ch: ch}
	// The flags bb declares it with (amqp.Topology): a durable topic exchange.
	if err := ch.ExchangeDeclare(r.exchange, amqp091.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ch.ExchangeDelete(r.exchange, false, false); err != nil {
			t.Errorf("cannot delete exchange %s: %v", r.exchange, err)
		}
		_ = conn.Close()
	})
	return r
}

// env is the environment that points bb at this exchange.
func (r *rabbit) env() []string {
	return []string{"RABBIT_URL=" + r.url, "EXCHANGE_NAME=" + r.exchange}
}

// bindQueue declares a queue bound to the exchange under key.
func (r *rabbit) bindQueue(key string) string {
	r.t.Helper()
	q, err := r.ch.QueueDeclare(r.exchange+".probe."+uuid.NewString()[:8], false, false, true, false, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.ch.QueueBind(q.Name, key, r.exchange, false, nil); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _, _ = r.ch.QueueDelete(q.Name, false, false, false) })
	return q.Name
}

// get takes the one message a queue must hold now.
func (r *rabbit) get(queue string) amqp091.Delivery {
	r.t.Helper()
	d, ok, err := r.ch.Get(queue, true)
	if err != nil {
		r.t.Fatal(err)
	}
	if !ok {
		r.t.Fatalf("queue %s is empty", queue)
	}
	return d
}

// publishRaw publishes body as is and waits for the broker's confirm, so
// that it is queued before anything published after it.
func (r *rabbit) publishRaw(key string, body []byte) {
	r.t.Helper()
	ch, err := r.conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, r.exchange, key, false, false,
		amqp091.Publishing{MessageId: uuid.NewString(), ContentType: "text/plain", Body: body})
	if err != nil {
		r.t.Fatal(err)
	}
	if ok, err := conf.WaitContext(ctx); !ok || err != nil {
		r.t.Fatalf("the broker did not confirm the raw publish: %v", err)
	}
}

// passiveDeclare asks the broker about a queue, on a channel of its own
// since a failed passive declare closes the channel; it returns the AMQP
// reply code (0 when the queue exists and this connection may use it).
func (r *rabbit) passiveDeclare(queue string) int {
	r.t.Helper()
	ch, err := r.conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	_, err = ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*amqp091.Error](err); ok {
		return e.Code
	}
	r.t.Fatalf("passive declare of %s: %v", queue, err)
	return 0
}

func TestPublish_deliversAV1EnvelopeWithTheContractProperties(t *testing.T) {
	r := newRabbit(t)
	queue := r.bindQueue("fireflies.transcript.upload")
	parent := uuid.New()
	res := mustSucceed(t, run{env: r.env()}, "publish", "fireflies.transcript.upload", "--mock", "--correlation-id", parent.String())
	ls := lines(res.stdout)
	if len(ls) != 1 {
		t.Fatalf("want the event id alone on stdout\n%s", res)
	}
	id, err := uuid.Parse(ls[0])
	if err != nil {
		t.Fatalf("stdout is not an event id: %v\n%s", err, res)
	}
	if strings.Contains(res.stderr, "no queue is bound") {
		t.Errorf("a routed publish was reported unroutable\n%s", res)
	}

	d := r.get(queue)
	if d.MessageId != id.String() {
		t.Errorf("message_id = %q, want %s", d.MessageId, id)
	}
	if d.DeliveryMode != amqp091.Persistent {
		t.Errorf("delivery_mode = %d, want 2 (persistent)", d.DeliveryMode)
	}
	if d.ContentType != "application/json" {
		t.Errorf("content_type = %q, want application/json", d.ContentType)
	}
	if d.Exchange != r.exchange || d.RoutingKey != "fireflies.transcript.upload" {
		t.Errorf("exchange, routing key = %q, %q", d.Exchange, d.RoutingKey)
	}
	env, err := envelope.Decode(d.Body)
	if err != nil {
		t.Fatalf("body is not a v1 envelope: %v\n%s", err, d.Body)
	}
	if env.EventID != id || env.EventType != "fireflies.transcript.upload" || len(env.CorrelationIDs) != 1 || env.CorrelationIDs[0] != parent {
		t.Errorf("envelope = %+v", env)
	}
	var payload map[string]any
	if err := json.Unmarshal(env.Payload, &payload); err != nil || payload["media_file"] == nil {
		t.Errorf("payload %s: %v", env.Payload, err)
	}
}

// Python's TriggerType has webhook and service beside the contract's six;
// bb publishes them as Python does.
func TestPublish_webhookAndServiceTriggerTypes(t *testing.T) {
	r := newRabbit(t)
	queue := r.bindQueue("fireflies.transcript.upload")
	for _, trigger := range []string{"webhook", "service"} {
		mustSucceed(t, run{env: r.env()}, "publish", "fireflies.transcript.upload", "--mock", "--source-type", trigger)
		env, err := envelope.Decode(r.get(queue).Body)
		if err != nil {
			t.Fatalf("body is not a v1 envelope: %v", err)
		}
		if got := string(env.Source.Type); got != trigger {
			t.Errorf("source.type = %q, want %q", got, trigger)
		}
	}
}

// An envelope given whole gets what Python's model would generate for
// what it leaves out, and keeps the members Go does not know.
func TestPublish_envelopeGetsPythonDefaultsAndKeepsUnknownMembers(t *testing.T) {
	r := newRabbit(t)
	queue := r.bindQueue("fireflies.transcript.upload")
	body := `{"event_type": "fireflies.transcript.upload", "source": {"host": "h", "type": "service", "x_src": 1},
	  "payload": {"media_file": "/m.mp4", "media_duration_seconds": 90, "media_type": "video", "x_p": "kept"}, "x_top": "t"}`
	res := mustSucceed(t, run{env: r.env()}, "publish", "--envelope-json", body)
	id, err := uuid.Parse(strings.TrimSpace(res.stdout))
	if err != nil {
		t.Fatalf("stdout is not an event id\n%s", res)
	}
	d := r.get(queue)
	env, err := envelope.Decode(d.Body)
	if err != nil {
		t.Fatalf("body is not a v1 envelope: %v\n%s", err, d.Body)
	}
	if env.EventID != id || id.Version() != 4 || time.Since(env.Timestamp) > time.Minute || env.Version != "1.0.0" || len(env.CorrelationIDs) != 0 {
		t.Errorf("envelope %+v: want a new uuid4 %s, now, 1.0.0, []", env, id)
	}
	for _, want := range []string{`"meta":null,"x_src":1}`, `"x_p":"kept"`, `,"x_top":"t"}`} {
		if !bytes.Contains(d.Body, []byte(want)) {
			t.Errorf("published body lacks %s:\n%s", want, d.Body)
		}
	}
}

// A payload that Python's consumers would convert is published converted,
// in its proper JSON type; BB_STRICT_TYPES=1 refuses it instead.
func TestPublish_laxTypesArePublishedCanonically(t *testing.T) {
	r := newRabbit(t)
	queue := r.bindQueue("fireflies.transcript.upload")
	payload := `{"media_file": "/m.mp4", "media_duration_seconds": "90", "media_type": "video"}`
	mustSucceed(t, run{env: r.env()}, "publish", "fireflies.transcript.upload", "--json", payload)
	env, err := envelope.Decode(r.get(queue).Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(env.Payload); !strings.Contains(got, `"media_duration_seconds":90`) {
		t.Errorf("payload on the bus = %s, want media_duration_seconds as the integer 90", got)
	}

	res := bb(t, run{env: append(r.env(), "BB_STRICT_TYPES=1")}, "publish", "fireflies.transcript.upload", "--json", payload)
	if res.code != 1 || !strings.Contains(res.stderr, "payload.media_duration_seconds: expected integer, got string") {
		t.Errorf("with BB_STRICT_TYPES=1: want exit 1 naming the field\n%s", res)
	}
}

// Nobody bound to the key: the broker confirms and drops the event; bb
// warns and still succeeds.
func TestPublish_unroutableWarnsAndExits0(t *testing.T) {
	r := newRabbit(t)
	res := mustSucceed(t, run{env: r.env()}, "publish", "agent.thread.prompt", "--mock")
	if _, err := uuid.Parse(strings.TrimSpace(res.stdout)); err != nil {
		t.Errorf("stdout is not the event id\n%s", res)
	}
	if !strings.Contains(res.stderr, `no queue is bound to routing key "agent.thread.prompt"`) {
		t.Errorf("no warning that nobody is bound\n%s", res)
	}
}

// startTail starts bb tail and returns once its queue is bound: bb logs
// "tail: listening" after every Subscribe returned, and Subscribe returns
// after the broker declared the queue and its bindings.
func startTail(t *testing.T, r *rabbit, args ...string) *process {
	t.Helper()
	p := startBB(t, run{env: r.env()}, append([]string{"tail"}, args...)...)
	p.waitStderr("tail: listening")
	return p
}

func TestTail_printsMatchingEventsAsEnvelopeLines(t *testing.T) {
	r := newRabbit(t)
	tail := startTail(t, r, "--count", "1", "fireflies.#")
	// Published first, not matched: must not be printed.
	mustSucceed(t, run{env: r.env()}, "publish", "agent.thread.prompt", "--mock")
	res := mustSucceed(t, run{env: r.env()}, "publish", "fireflies.transcript.upload", "--mock")
	id := strings.TrimSpace(res.stdout)

	out := tail.wait()
	if out.code != 0 {
		t.Fatalf("tail: want exit 0 after --count 1\n%s", out)
	}
	ls := lines(out.stdout)
	if len(ls) != 1 {
		t.Fatalf("want one line\n%s", out)
	}
	env, err := envelope.Decode([]byte(ls[0]))
	if err != nil {
		t.Fatalf("not a v1 envelope: %v\n%s", err, out)
	}
	if env.EventID.String() != id || env.EventType != "fireflies.transcript.upload" {
		t.Errorf("printed %s %s, want %s fireflies.transcript.upload", env.EventID, env.EventType, id)
	}
	if strings.HasPrefix(ls[0], "{\n") || strings.Contains(ls[0], `"event_id": `) {
		t.Errorf("the line is not compact JSON: %s", ls[0])
	}
}

// A body that is not an envelope is printed as a line saying so, and the
// tail goes on; an event matching two patterns is printed once.
func TestTail_malformedMessagesAndOverlappingPatterns(t *testing.T) {
	r := newRabbit(t)
	tail := startTail(t, r, "--count", "2", "fireflies.#", "fireflies.transcript.*")
	r.publishRaw("fireflies.transcript.ready", []byte("this is not JSON"))
	res := mustSucceed(t, run{env: r.env()}, "publish", "fireflies.transcript.upload", "--mock")
	id := strings.TrimSpace(res.stdout)

	out := tail.wait()
	ls := lines(out.stdout)
	if out.code != 0 || len(ls) != 2 {
		t.Fatalf("want exit 0 and two lines\n%s", out)
	}
	var bad struct {
		Malformed  bool   `json:"malformed"`
		Reason     string `json:"reason"`
		RoutingKey string `json:"routing_key"`
		Body       string `json:"body"`
	}
	if err := json.Unmarshal([]byte(ls[0]), &bad); err != nil {
		t.Fatalf("the malformed line is not JSON: %v\n%s", err, out)
	}
	if !bad.Malformed || bad.Reason == "" || bad.RoutingKey != "fireflies.transcript.ready" || bad.Body != "this is not JSON" {
		t.Errorf("malformed line = %+v", bad)
	}
	env, err := envelope.Decode([]byte(ls[1]))
	if err != nil || env.EventID.String() != id {
		t.Errorf("second line: want event %s: %v\n%s", id, err, out)
	}
}

func TestTail_prettyPrintsOneReadableLine(t *testing.T) {
	r := newRabbit(t)
	tail := startTail(t, r, "--count", "1", "--pretty")
	parent := uuid.NewString()
	res := mustSucceed(t, run{env: r.env()}, "publish", "agent.thread.prompt", "--mock", "--correlation-id", parent, "--source-host", "ops-box")
	id := strings.TrimSpace(res.stdout)
	out := tail.wait()
	ls := lines(out.stdout)
	if out.code != 0 || len(ls) != 1 {
		t.Fatalf("want exit 0 and one line\n%s", out)
	}
	for _, want := range []string{"agent.thread.prompt", id, "bloodbank-cli@ops-box", parent, `prompt="Analyze this codebase"`} {
		if !strings.Contains(ls[0], want) {
			t.Errorf("pretty line lacks %q: %s", want, ls[0])
		}
	}
	if _, err := time.Parse(envelope.TimestampLayout, strings.Fields(ls[0])[0]); err != nil {
		t.Errorf("pretty line does not start with the time: %s", ls[0])
	}
}

// The tail's queue is exclusive to its connection, so the broker deletes
// it when the tail exits: nothing of it is left behind.
func TestTail_queueIsExclusive(t *testing.T) {
	r := newRabbit(t)
	tail := startTail(t, r, "--count", "1", "github.#")
	queue := ""
	for _, line := range strings.Split(tail.stderrText(), "\n") {
		var entry struct {
			Msg   string `json:"msg"`
			Queue string `json:"queue"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "tail: listening" {
			queue = entry.Queue
		}
	}
	if !strings.HasPrefix(queue, "bb.tail.") {
		t.Fatalf("tail did not log its queue bb.tail.<uuid>: %q", queue)
	}
	if code := r.passiveDeclare(queue); code != amqp091.ResourceLocked {
		t.Errorf("passive declare of the tail's queue from another connection: reply %d, want %d (RESOURCE_LOCKED: exclusive)", code, amqp091.ResourceLocked)
	}
	mustSucceed(t, run{env: r.env()}, "publish", "github.pr.created", "--mock")
	if out := tail.wait(); out.code != 0 {
		t.Fatalf("tail: want exit 0\n%s", out)
	}
}

// Without --count a tail runs until SIGINT or SIGTERM, and then ends
// normally, having printed what it received.
func TestTail_endsCleanlyOnSignals(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(sig.String(), func(t *testing.T) {
			r := newRabbit(t)
			tail := startTail(t, r, "llm.*")
			res := mustSucceed(t, run{env: r.env()}, "publish", "llm.prompt", "--mock")
			id := strings.TrimSpace(res.stdout)
			tail.waitStdout(id)
			if err := tail.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			out := tail.wait()
			if out.code != 0 {
				t.Fatalf("want exit 0 on %s\n%s", sig, out)
			}
			if ls := lines(out.stdout); len(ls) != 1 || !strings.Contains(ls[0], id) {
				t.Errorf("want the one event printed\n%s", out)
			}
		})
	}
}
