package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

func newPoison(t *testing.T, cfg middleware.PoisonConfig) *middleware.Poison {
	t.Helper()
	p, err := middleware.NewPoison(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPoisonConfig_Validate_joinsEveryProblem(t *testing.T) {
	err := middleware.PoisonConfig{}.Validate()
	if err == nil || !strings.Contains(err.Error(), "Publisher is required") || !strings.Contains(err.Error(), "Queue is required") {
		t.Errorf("Validate() = %v, want both missing fields named", err)
	}
}

func TestPoisonQueueName_andRetryQueueName(t *testing.T) {
	if got := reliability.PoisonQueueName("bloodbank.events.v1.billing"); got != "bloodbank.events.v1.billing.poison" {
		t.Errorf("PoisonQueueName = %q", got)
	}
	for d, want := range map[time.Duration]string{
		time.Second: "q.retry.1s", 10 * time.Second: "q.retry.10s", time.Minute: "q.retry.1m", 50 * time.Millisecond: "q.retry.50ms",
		90 * time.Second: "q.retry.90s", 2 * time.Hour: "q.retry.2h", 1500 * time.Microsecond: "q.retry.1.5ms",
	} {
		if got := reliability.RetryQueueName("q", d); got != want {
			t.Errorf("RetryQueueName(q, %s) = %q, want %q", d, got, want)
		}
	}
}

// stack is the recommended order: poison, then retry, around the handler.
func stack(t *testing.T, pub message.Publisher, retry middleware.RetryConfig) (*middleware.Poison, *middleware.Retry, []message.HandlerMiddleware) {
	t.Helper()
	p := newPoison(t, middleware.PoisonConfig{Publisher: pub, Queue: "svc.poison", Service: "svc"})
	r := newRetry(t, retry)
	return p, r, []message.HandlerMiddleware{p.Middleware, r.Middleware}
}

func TestPoison_parksPermanentFailureAtOnceWithHeaders(t *testing.T) {
	pub := &relCapturePublisher{}
	p, _, mws := stack(t, pub, fastRetry())
	calls := 0
	rr := relRunRouter(t, mws, relHandler{"billing", func(*message.Message) error {
		calls++
		return &envelope.PermanentError{Kind: envelope.KindInvalid, Err: errors.New("payload.amount: must be positive")}
	}})
	msg := relEventMsg(t, "orders.created", map[string]any{"amount": -1})
	msg.Metadata.Set(envelope.MetaRoutingKey, "orders.created")
	msg.Metadata.Set("tenant", "acme")
	before := time.Now().Add(-time.Second)
	if !rr.send("billing", msg) {
		t.Fatal("a parked message was nacked")
	}
	if calls != 1 {
		t.Errorf("handler ran %d times, want 1 (permanent)", calls)
	}
	got := pub.published()
	if len(got) != 1 || got[0].topic != "svc.poison" {
		t.Fatalf("published %d messages (%v), want 1 to svc.poison", len(got), got)
	}
	parked := got[0].msg
	if parked.UUID != msg.UUID {
		t.Errorf("parked id %s, want the event id %s", parked.UUID, msg.UUID)
	}
	if !bytes.Equal(relWireBody(t, parked), relWireBody(t, msg)) {
		t.Errorf("parked body differs from the message's envelope:\n got %s\nwant %s", relWireBody(t, parked), relWireBody(t, msg))
	}
	want := map[string]string{
		middleware.HeaderPoisonKind: envelope.KindInvalid, middleware.HeaderPoisonAttempts: "1",
		middleware.HeaderPoisonHandler: "billing", middleware.HeaderPoisonService: "svc",
		envelope.MetaOriginalRoutingKey: "orders.created", "tenant": "acme",
	}
	for k, v := range want {
		if g := parked.Metadata.Get(k); g != v {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
	if r := parked.Metadata.Get(middleware.HeaderPoisonReason); !strings.Contains(r, "payload.amount: must be positive") {
		t.Errorf("reason %q does not carry the error", r)
	}
	first, err1 := envelope.ParseTimestamp(parked.Metadata.Get(middleware.HeaderPoisonFirstFailure))
	last, err2 := envelope.ParseTimestamp(parked.Metadata.Get(middleware.HeaderPoisonLastFailure))
	if err1 != nil || err2 != nil || first.Before(before) || last.Before(first) || !strings.HasSuffix(parked.Metadata.Get(middleware.HeaderPoisonLastFailure), "Z") {
		t.Errorf("failure times %q %q (%v %v), want RFC 3339 UTC, first <= last", parked.Metadata.Get(middleware.HeaderPoisonFirstFailure),
			parked.Metadata.Get(middleware.HeaderPoisonLastFailure), err1, err2)
	}
	if s := p.Stats(); s.Parked != 1 || s.Failed != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestPoison_parksExhaustedRetryWithAttempts(t *testing.T) {
	pub := &relCapturePublisher{}
	_, r, mws := stack(t, pub, fastRetry())
	rr := relRunRouter(t, mws, relHandler{"billing", func(*message.Message) error { return errTransient }})
	if !rr.send("billing", relEventMsg(t, "orders.created", map[string]any{})) {
		t.Fatal("nacked")
	}
	got := pub.published()
	if len(got) != 1 {
		t.Fatalf("%d parked, want 1", len(got))
	}
	md := got[0].msg.Metadata
	if md.Get(middleware.HeaderPoisonKind) != envelope.KindHandler || md.Get(middleware.HeaderPoisonAttempts) != "3" ||
		md.Get(middleware.HeaderPoisonReason) != errTransient.Error() {
		t.Errorf("kind %q attempts %q reason %q, want handler, 3, the last error", md.Get(middleware.HeaderPoisonKind),
			md.Get(middleware.HeaderPoisonAttempts), md.Get(middleware.HeaderPoisonReason))
	}
	if r.Stats().Exhausted != 1 {
		t.Errorf("retry stats %+v", r.Stats())
	}
}

func TestPoison_parksPanickingHandlerAfterRetries(t *testing.T) {
	pub := &relCapturePublisher{}
	_, r, mws := stack(t, pub, fastRetry())
	calls := 0
	rr := relRunRouter(t, mws, relHandler{"billing", func(*message.Message) error {
		calls++
		var m map[string]int
		//lint:ignore SA5000 the test needs a runtime panic, not a panic(value)
		m["x"] = 1
		return nil
	}})
	if !rr.send("billing", relEventMsg(t, "orders.created", map[string]any{})) {
		t.Fatal("nacked")
	}
	if calls != 3 || r.Stats().Panics != 3 {
		t.Errorf("handler ran %d times (%d panics), want 3", calls, r.Stats().Panics)
	}
	md := pub.published()[0].msg.Metadata
	if md.Get(middleware.HeaderPoisonKind) != middleware.KindPanic || !strings.Contains(md.Get(middleware.HeaderPoisonReason), "panic: assignment to entry in nil map") {
		t.Errorf("kind %q reason %q, want the panic", md.Get(middleware.HeaderPoisonKind), md.Get(middleware.HeaderPoisonReason))
	}
	if !strings.Contains(md.Get(middleware.HeaderPoisonStack), "poison_test.go") {
		t.Error("the stack header does not show where the handler panicked")
	}
}

// Without retry, Poison itself recovers a panic; it parks it only with
// ParkAll (a panic is transient: a Retry inside decides when to give up).
func TestPoison_recoversPanicWithoutRetry(t *testing.T) {
	pub := &relCapturePublisher{}
	plain := newPoison(t, middleware.PoisonConfig{Publisher: pub, Queue: "q"})
	all := newPoison(t, middleware.PoisonConfig{Publisher: pub, Queue: "q", ParkAll: true})
	rr := relRunRouter(t, nil,
		relHandler{"plain", func(msg *message.Message) error {
			_, err := plain.Middleware(func(*message.Message) ([]*message.Message, error) { panic("boom") })(msg)
			return err
		}},
		relHandler{"all", func(msg *message.Message) error {
			_, err := all.Middleware(func(*message.Message) ([]*message.Message, error) { panic("boom") })(msg)
			return err
		}})
	if rr.send("plain", message.NewMessage(relNewID(), nil)) {
		t.Error("a transient panic was acked without retry or ParkAll")
	}
	if !rr.send("all", message.NewMessage(relNewID(), nil)) {
		t.Error("ParkAll did not park a panic")
	}
	if got := pub.published(); len(got) != 1 || got[0].msg.Metadata.Get(middleware.HeaderPoisonKind) != middleware.KindPanic {
		t.Errorf("parked %d, want 1 of kind panic", len(got))
	}
}

func TestPoison_transientErrorIsReturnedUnlessParkAll(t *testing.T) {
	pub := &relCapturePublisher{}
	p := newPoison(t, middleware.PoisonConfig{Publisher: pub, Queue: "q"})
	all := newPoison(t, middleware.PoisonConfig{Publisher: pub, Queue: "q", ParkAll: true})
	rr := relRunRouter(t, nil,
		relHandler{"plain", func(msg *message.Message) error {
			_, err := p.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, errTransient })(msg)
			return err
		}},
		relHandler{"all", func(msg *message.Message) error {
			_, err := all.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, errTransient })(msg)
			return err
		}})
	if rr.send("plain", message.NewMessage(relNewID(), nil)) {
		t.Error("a transient error was parked and acked")
	}
	if len(pub.published()) != 0 {
		t.Error("a transient error was parked")
	}
	if !rr.send("all", message.NewMessage(relNewID(), nil)) {
		t.Error("ParkAll did not park")
	}
	if got := pub.published(); len(got) != 1 || got[0].msg.Metadata.Get(middleware.HeaderPoisonKind) != envelope.KindHandler ||
		got[0].msg.Metadata.Get(middleware.HeaderPoisonAttempts) != "1" {
		t.Errorf("ParkAll parked %d messages, want 1 of kind handler after 1 attempt", len(got))
	}
}

// The delivery is acked only once the poison publish succeeded: when it
// fails, the message is nacked, and the error is not permanent any more
// (an outer guard would ack a permanent one).
func TestPoison_failedParkNacksTheMessage(t *testing.T) {
	pub := &relCapturePublisher{failures: 1}
	p := newPoison(t, middleware.PoisonConfig{Publisher: pub, Queue: "q"})
	var lastErr error
	rr := relRunRouter(t, []message.HandlerMiddleware{
		func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				out, err := h(msg)
				lastErr = err
				return out, err
			}
		}, p.Middleware,
	}, relHandler{"billing", func(*message.Message) error { return envelope.Permanent(errors.New("refused")) }})
	msg := message.NewMessage(relNewID(), []byte("x"))
	if rr.send("billing", msg) {
		t.Fatal("acked although parking failed: the message would be lost")
	}
	if !errors.Is(lastErr, middleware.ErrParkFailed) || !errors.Is(lastErr, errRelPublish) || envelope.IsPermanent(lastErr) {
		t.Errorf("error = %v: want ErrParkFailed wrapping the publish error, not permanent", lastErr)
	}
	// The redelivery is parked.
	again := message.NewMessage(msg.UUID, []byte("x"))
	if !rr.send("billing", again) || len(pub.published()) != 1 {
		t.Error("the redelivered message was not parked")
	}
	if s := p.Stats(); s.Failed != 1 || s.Parked != 1 {
		t.Errorf("stats = %+v, want 1 failed, 1 parked", s)
	}
}

// On a bus.Service (embedded transport): a malformed body is parked byte for
// byte; while the poison publisher fails, the delivery is requeued, not
// dropped by the service's guard, and parked once the publisher works.
func TestPoison_onEmbeddedServiceParksOriginalBodyAfterFailedPark(t *testing.T) {
	b := relEmbeddedBus(t, "billing", "BB_CONSUMERS=1")
	svc, err := b.NewService("")
	if err != nil {
		t.Fatal(err)
	}
	queue, err := reliability.DeclarePoisonQueue(context.Background(), b, svc.QueueName())
	if err != nil {
		t.Fatal(err)
	}
	pub := &relCapturePublisher{failures: 2, next: b.QueuePublisher()}
	p := newPoison(t, middleware.PoisonConfig{Publisher: pub, Queue: queue, Service: svc.Name()})
	r := newRetry(t, fastRetry())
	svc.Use(p.Middleware, r.Middleware)
	processed := &relIDs{}
	type order struct {
		ID string `json:"id"`
	}
	if err := bus.Handle(svc, "charge", "orders.#", func(_ context.Context, ev bus.Event[order]) error {
		processed.add(ev.Envelope.EventID.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)

	body := []byte("{\"event_id\": 42, not json at all \xff")
	if err := b.Publisher().Publish("orders.created", relRawMsg(relNewID(), body)); err != nil {
		t.Fatal(err)
	}
	good := relEventMsg(t, "orders.created", map[string]any{"id": "o-1"})
	if err := b.Publisher().Publish("orders.created", good); err != nil {
		t.Fatal(err)
	}
	emb := b.EmbeddedBroker()
	relEventually(t, relWait, "the malformed message parked and the good one processed", func() bool {
		return emb.QueueLength(queue) == 1 && processed.count(good.UUID) == 1
	})
	if n := emb.QueueLength(svc.QueueName()); n != 0 {
		t.Errorf("service queue holds %d messages, want 0", n)
	}
	got := pub.published()
	if len(got) != 1 {
		t.Fatalf("%d parked, want 1", len(got))
	}
	if wire := relWireBody(t, got[0].msg); !bytes.Equal(wire, body) {
		t.Errorf("parked body = %q, want the original bytes %q", wire, body)
	}
	if k := got[0].msg.Metadata.Get(middleware.HeaderPoisonKind); k != envelope.KindMalformed {
		t.Errorf("kind = %q, want malformed", k)
	}
	if s := p.Stats(); s.Failed != 2 || s.Parked != 1 {
		t.Errorf("stats = %+v, want 2 failed parks then 1 parked", s)
	}
}

// Poison works in a plain Watermill router on GoChannel, publishing to a
// GoChannel topic.
func TestPoison_onGoChannelRouter(t *testing.T) {
	ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	parkedCh, err := ps.Subscribe(context.Background(), "poison")
	if err != nil {
		t.Fatal(err)
	}
	p := newPoison(t, middleware.PoisonConfig{Publisher: ps, Queue: "poison", Service: "plain"})
	r := newRetry(t, fastRetry())
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	router.AddMiddleware(p.Middleware, r.Middleware)
	router.AddConsumerHandler("plain_handler", "orders", ps, func(msg *message.Message) error {
		return envelope.Permanent(errors.New("never: " + string(msg.Payload)))
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = router.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-router.Running()

	msg := message.NewMessage("order-1", []byte("plain payload"))
	if err := ps.Publish("orders", msg); err != nil {
		t.Fatal(err)
	}
	select {
	case parked := <-parkedCh:
		parked.Ack()
		if parked.UUID != "order-1" || string(parked.Payload) != "plain payload" {
			t.Errorf("parked %s %q, want order-1 with its payload", parked.UUID, parked.Payload)
		}
		if parked.Metadata.Get(middleware.HeaderPoisonHandler) != "plain_handler" || parked.Metadata.Get(middleware.HeaderPoisonKind) != envelope.KindHandler ||
			parked.Metadata.Get(envelope.MetaOriginalRoutingKey) != "orders" {
			t.Errorf("headers %v", parked.Metadata)
		}
	case <-time.After(relWait):
		t.Fatal("nothing parked")
	}
}

func TestPoisonQueue_embeddedTransportIsRefused(t *testing.T) {
	b := relEmbeddedBus(t, "billing")
	q := reliability.NewPoisonQueue(b, "")
	if q.Name() != "bloodbank.events.v1.billing.poison" || q.ServiceQueue() != "bloodbank.events.v1.billing" {
		t.Errorf("queues %q %q", q.Name(), q.ServiceQueue())
	}
	if _, err := q.List(context.Background(), reliability.PoisonFilter{}); !errors.Is(err, reliability.ErrPoisonQueueEmbedded) {
		t.Errorf("List on embedded = %v, want ErrPoisonQueueEmbedded", err)
	}
	if _, err := q.Purge(context.Background(), reliability.PoisonFilter{}); !errors.Is(err, reliability.ErrPoisonQueueEmbedded) {
		t.Errorf("Purge on embedded = %v, want ErrPoisonQueueEmbedded", err)
	}
}

func TestPoisonFilter_Match(t *testing.T) {
	at := time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC)
	m := reliability.ParkedMessage{EventID: "e1", RoutingKey: "orders.created.eu", Kind: envelope.KindInvalid, Handler: "charge", LastFailure: at}
	for _, tc := range []struct {
		name string
		f    reliability.PoisonFilter
		want bool
	}{
		{"zero", reliability.PoisonFilter{}, true},
		{"id", reliability.PoisonFilter{EventIDs: []string{"e0", "e1"}}, true},
		{"other id", reliability.PoisonFilter{EventIDs: []string{"e2"}}, false},
		{"pattern #", reliability.PoisonFilter{RoutingKey: "orders.#"}, true},
		{"pattern *", reliability.PoisonFilter{RoutingKey: "orders.*"}, false},
		{"kind", reliability.PoisonFilter{Kind: envelope.KindInvalid}, true},
		{"other kind", reliability.PoisonFilter{Kind: envelope.KindMalformed}, false},
		{"handler", reliability.PoisonFilter{Handler: "ship"}, false},
		{"since", reliability.PoisonFilter{Since: at}, true},
		{"since later", reliability.PoisonFilter{Since: at.Add(time.Second)}, false},
		{"until is exclusive", reliability.PoisonFilter{Until: at}, false},
		{"range", reliability.PoisonFilter{Since: at.Add(-time.Hour), Until: at.Add(time.Hour)}, true},
	} {
		if got := tc.f.Match(m); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
	if err := (reliability.PoisonFilter{RoutingKey: strings.Repeat("a", 256), Since: at, Until: at, Limit: -1}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "pattern") || !strings.Contains(err.Error(), "empty") || !strings.Contains(err.Error(), "negative") {
		t.Errorf("Validate = %v, want the pattern, the empty range and the limit named", err)
	}
}

// The `bb dlq` library against RabbitMQ: list with filters (without taking
// anything off the queue), show, replay to the failed handler alone, purge.
func TestPoisonQueue_listShowReplayPurge(t *testing.T) {
	r := relNewRabbit(t, nil, "BB_CONSUMERS=1")
	svc, _ := r.newService(reliability.Config{Retry: fastRetry(), NoRedelivery: true})
	var broken atomic.Bool
	broken.Store(true)
	charged, shipped := &relIDs{}, &relIDs{}
	var replayAttempts sync.Map
	type order struct {
		ID string `json:"id"`
	}
	if err := bus.Handle(svc, "charge", "orders.#", func(ctx context.Context, ev bus.Event[order]) error {
		if broken.Load() {
			return &envelope.PermanentError{Kind: envelope.KindInvalid, Err: errors.New("card declined for " + ev.Payload.ID)}
		}
		replayAttempts.Store(ev.Envelope.EventID.String(), middleware.AttemptFromCtx(ctx))
		charged.add(ev.Envelope.EventID.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Handle(svc, "ship", "orders.#", func(_ context.Context, ev bus.Event[order]) error {
		shipped.add(ev.Envelope.EventID.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)

	ctx := context.Background()
	var envs []envelope.Envelope
	for i, key := range []string{"orders.created", "orders.created", "orders.refunded"} {
		env, err := envelope.New(key, map[string]any{"id": fmt.Sprintf("o-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	before := time.Now().Add(-time.Second)
	if err := r.bus.Publish(ctx, envs...); err != nil {
		t.Fatal(err)
	}
	q := reliability.NewPoisonQueue(r.bus, r.service)
	relEventually(t, relWait, "three messages parked and shipped", func() bool {
		n, err := q.Count(ctx)
		return err == nil && n == 3 && shipped.distinct() == 3
	})

	all, err := q.List(ctx, reliability.PoisonFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("List = %d messages, %v; want 3", len(all), err)
	}
	for i, m := range all {
		env := envs[i]
		msg, _ := envelope.NewMessage(env)
		if m.EventID != env.EventID.String() || m.RoutingKey != env.EventType || m.Kind != envelope.KindInvalid ||
			m.Handler != "charge" || m.Service != r.service || m.Attempts != 1 || m.LastFailure.Before(before) {
			t.Errorf("parked[%d] = %+v", i, m)
		}
		if !bytes.Equal(m.Body, relWireBody(t, msg)) {
			t.Errorf("parked[%d] body %s, want the published envelope %s", i, m.Body, relWireBody(t, msg))
		}
		if !strings.Contains(m.Reason, "card declined for o-") {
			t.Errorf("parked[%d] reason %q", i, m.Reason)
		}
	}
	if n, _ := q.Count(ctx); n != 3 {
		t.Errorf("List took messages off the queue: %d left, want 3", n)
	}
	for name, tc := range map[string]struct {
		f    reliability.PoisonFilter
		want int
	}{
		"routing key":  {reliability.PoisonFilter{RoutingKey: "orders.refunded"}, 1},
		"pattern":      {reliability.PoisonFilter{RoutingKey: "orders.*"}, 3},
		"kind":         {reliability.PoisonFilter{Kind: envelope.KindMalformed}, 0},
		"time, future": {reliability.PoisonFilter{Since: time.Now().Add(time.Minute)}, 0},
		"time, range":  {reliability.PoisonFilter{Since: before, Until: time.Now().Add(time.Minute)}, 3},
		"limit":        {reliability.PoisonFilter{Limit: 2}, 2},
	} {
		got, err := q.List(ctx, tc.f)
		if err != nil || len(got) != tc.want {
			t.Errorf("List(%s) = %d, %v; want %d", name, len(got), err, tc.want)
		}
	}
	shown, err := q.Show(ctx, envs[2].EventID.String())
	if err != nil || shown.RoutingKey != "orders.refunded" {
		t.Errorf("Show = %+v, %v", shown, err)
	}
	if _, err := q.Show(ctx, relNewID()); !errors.Is(err, reliability.ErrNotParked) {
		t.Errorf("Show(unknown) = %v, want ErrNotParked", err)
	}

	// The handler is fixed: replay the two orders.created. They reach
	// "charge" alone, with the same ids, their attempts counted from 1.
	broken.Store(false)
	replayed, err := q.Replay(ctx, reliability.PoisonFilter{RoutingKey: "orders.created"})
	if err != nil || len(replayed) != 2 {
		t.Fatalf("Replay = %d, %v; want 2", len(replayed), err)
	}
	relEventually(t, relWait, "the replayed messages charged", func() bool {
		return charged.count(envs[0].EventID.String()) == 1 && charged.count(envs[1].EventID.String()) == 1
	})
	for _, env := range envs[:2] {
		if n := shipped.count(env.EventID.String()); n != 1 {
			t.Errorf("ship ran %d times on %s, want 1: a replay must reach the failed handler alone", n, env.EventID)
		}
		if a, _ := replayAttempts.Load(env.EventID.String()); a != 1 {
			t.Errorf("replayed %s on attempt %v, want 1 (count reset)", env.EventID, a)
		}
	}
	if n, _ := q.Count(ctx); n != 1 {
		t.Errorf("%d parked after replay, want 1", n)
	}

	// Purge by filter, then everything.
	if n, err := q.Purge(ctx, reliability.PoisonFilter{Kind: envelope.KindMalformed}); err != nil || n != 0 {
		t.Errorf("Purge(malformed) = %d, %v; want 0", n, err)
	}
	if n, err := q.Purge(ctx, reliability.PoisonFilter{EventIDs: []string{envs[2].EventID.String()}}); err != nil || n != 1 {
		t.Errorf("Purge(id) = %d, %v; want 1", n, err)
	}
	broken.Store(true)
	if err := r.bus.Publish(ctx, envs[0]); err != nil {
		t.Fatal(err)
	}
	relEventually(t, relWait, "one more parked", func() bool { n, _ := q.Count(ctx); return n == 1 })
	if n, err := q.Purge(ctx, reliability.PoisonFilter{}); err != nil || n != 1 {
		t.Errorf("Purge(all) = %d, %v; want 1", n, err)
	}
	if _, err := reliability.NewPoisonQueue(r.bus, "no_such_service").List(ctx, reliability.PoisonFilter{}); !errors.Is(err, reliability.ErrNoPoisonQueue) {
		t.Errorf("List of a service without a poison queue = %v, want ErrNoPoisonQueue", err)
	}
}

// A replayed message that fails again is parked anew while Replay may still
// be reading the queue: one Replay call must replay it once, not loop.
func TestPoisonQueue_replayOfAFailingMessageRunsOnce(t *testing.T) {
	r := relNewRabbit(t, nil, "BB_CONSUMERS=1")
	svc, _ := r.newService(reliability.Config{Retry: fastRetry(), NoRedelivery: true})
	var calls atomic.Int64
	if err := bus.Handle(svc, "always_fails", "orders.#", func(context.Context, bus.Event[map[string]any]) error {
		calls.Add(1)
		return &envelope.PermanentError{Kind: envelope.KindInvalid, Err: errors.New("still broken")}
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)
	ctx := context.Background()
	env, err := envelope.New("orders.created", map[string]any{"id": "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.bus.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	q := reliability.NewPoisonQueue(r.bus, r.service)
	relEventually(t, relWait, "the message parked", func() bool {
		n, err := q.Count(ctx)
		return err == nil && n == 1
	})
	replayed, err := q.Replay(ctx, reliability.PoisonFilter{})
	if err != nil || len(replayed) != 1 {
		t.Fatalf("Replay = %d messages, %v; want exactly 1", len(replayed), err)
	}
	relEventually(t, relWait, "the replay handled and parked again", func() bool {
		n, err := q.Count(ctx)
		return err == nil && n == 1 && calls.Load() == 2
	})
	if got := calls.Load(); got != 2 {
		t.Errorf("handler ran %d times, want 2 (the first delivery and one replay)", got)
	}
}
