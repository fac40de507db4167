package middleware_test

// Helpers shared by the reliability tests (retry, poison, dedup, faults).
// Their names start with "rel" so they cannot collide with the helpers of
// the package's other tests.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
)

// relWait is how long a test waits for something that normally happens in
// milliseconds before it fails.
const relWait = 10 * time.Second

// relChanSub is a Watermill subscriber fed by the test, so that it can see
// whether the router acked or nacked each message.
type relChanSub struct{ ch chan *message.Message }

// Subscribe forwards what the test sends until the subscription ends, then
// closes the channel, as the router expects of a subscriber.
func (s relChanSub) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-s.ch:
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func (s relChanSub) Close() error { return nil }

// relRouter is a plain Watermill router (no bus) with one handler per name,
// each fed by its own channel.
type relRouter struct {
	t    *testing.T
	subs map[string]relChanSub
}

type relHandler struct {
	name string
	fn   message.NoPublishHandlerFunc
}

// relRunRouter runs a plain Watermill router with the middleware (outermost
// first) and handlers, until the test ends.
func relRunRouter(t *testing.T, mws []message.HandlerMiddleware, handlers ...relHandler) *relRouter {
	t.Helper()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 5 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	router.AddMiddleware(mws...)
	rr := &relRouter{t: t, subs: map[string]relChanSub{}}
	for _, h := range handlers {
		sub := relChanSub{ch: make(chan *message.Message)}
		rr.subs[h.name] = sub
		router.AddConsumerHandler(h.name, "topic."+h.name, sub, h.fn)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	select {
	case <-router.Running():
	case <-time.After(relWait):
		t.Fatal("router did not start")
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return rr
}

// send hands msg to the handler and reports whether the router acked it
// (false: nacked).
func (rr *relRouter) send(handler string, msg *message.Message) bool {
	rr.t.Helper()
	select {
	case rr.subs[handler].ch <- msg:
	case <-time.After(relWait):
		rr.t.Fatalf("handler %s did not take message %s", handler, msg.UUID)
	}
	select {
	case <-msg.Acked():
		return true
	case <-msg.Nacked():
		return false
	case <-time.After(relWait):
		rr.t.Fatalf("message %s was neither acked nor nacked", msg.UUID)
	}
	return false
}

// relEventMsg is a well-formed Bloodbank message, as a producer builds it.
func relEventMsg(t testing.TB, eventType string, payload any) *message.Message {
	t.Helper()
	env, err := envelope.New(eventType, payload)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := envelope.NewMessage(env)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// relRawMsg is a message whose body goes on the wire as is (MetaRawBody),
// as a foreign producer would publish it.
func relRawMsg(id string, body []byte) *message.Message {
	msg := message.NewMessage(id, body)
	msg.Metadata.Set(envelope.MetaRawBody, "true")
	return msg
}

// relPublished is one message a relCapturePublisher took.
type relPublished struct {
	topic string
	msg   *message.Message
}

// relCapturePublisher records what is published, and fails while failures
// are left.
type relCapturePublisher struct {
	mu       sync.Mutex
	got      []relPublished
	failures int
	next     message.Publisher // where successful publishes go; optional
}

var errRelPublish = errors.New("broker unavailable (test)")

func (p *relCapturePublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	if p.failures > 0 {
		p.failures--
		p.mu.Unlock()
		return errRelPublish
	}
	for _, m := range msgs {
		p.got = append(p.got, relPublished{topic: topic, msg: m})
	}
	next := p.next
	p.mu.Unlock()
	if next != nil {
		return next.Publish(topic, msgs...)
	}
	return nil
}

func (p *relCapturePublisher) Close() error { return nil }

func (p *relCapturePublisher) published() []relPublished {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]relPublished(nil), p.got...)
}

// relWireBody is the body the codec writes for a message, the bytes that
// would be stored in a queue.
func relWireBody(t testing.TB, msg *message.Message) []byte {
	t.Helper()
	pub, err := envelope.Codec{}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return pub.Body
}

// relLogs is a logger whose output the test can read.
type relLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *relLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *relLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *relLogs) contains(s string) bool { return strings.Contains(l.String(), s) }

func (l *relLogs) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// relEventually polls cond until it holds or the deadline passes.
func relEventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// relEmbeddedBus is a bus on a fresh in-process broker, for a service.
func relEmbeddedBus(t testing.TB, service string, env ...string) *bus.Bus {
	t.Helper()
	cfg, err := bus.LoadConfig(append([]string{"SERVICE_NAME=" + service, "BB_DRAIN_TIMEOUT=2s"}, env...), "")
	if err != nil {
		t.Fatal(err)
	}
	broker := embedded.New(nil)
	t.Cleanup(func() { _ = broker.Close() })
	return bus.NewEmbeddedBus(cfg, broker, nil)
}

// relRunService runs svc until the test ends (then drains it).
func relRunService(t testing.TB, svc *bus.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Running():
	case err := <-done:
		t.Fatalf("service %s stopped at start: %v", svc.Name(), err)
	case <-time.After(relWait):
		t.Fatalf("service %s did not start", svc.Name())
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service %s: %v", svc.Name(), err)
		}
	})
}

// relIDs records which event ids a handler processed, how many times.
type relIDs struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *relIDs) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[id]++
}

func (r *relIDs) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[id]
}

func (r *relIDs) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.n)
}

func relNewID() string { return uuid.NewString() }
