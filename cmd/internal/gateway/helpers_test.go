package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// fixture is a gateway on its own embedded broker and correlation store.
type fixture struct {
	t       *testing.T
	broker  *embedded.Broker
	bus     *bus.Bus
	events  *domains.Registry
	store   *correlation.EmbeddedStore
	metrics *gateway.Metrics
	gw      *gateway.Server
	src     *sources
}

// sources stand for the counters of the middleware and the publisher.
type sources struct {
	retried, parked, deduplicated, corrFailed atomic.Int64
	stats                                     atomic.Pointer[transport.PublisherStats]
}

func (s *sources) f(v *atomic.Int64) func() float64 {
	return func() float64 { return float64(v.Load()) }
}

type option func(*gateway.Config, *gateway.Deps)

func withToken(tok string) option {
	return func(c *gateway.Config, _ *gateway.Deps) { c.Token = tok }
}

func withPublisher(p gateway.Publisher) option {
	return func(_ *gateway.Config, d *gateway.Deps) { d.Publisher = p }
}

func newFixture(t *testing.T, opts ...option) *fixture {
	t.Helper()
	events, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bus.LoadConfig(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	broker := embedded.New(nil)
	t.Cleanup(func() { _ = broker.Close() })
	b := bus.NewEmbeddedBus(cfg, broker, nil)
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	src := &sources{}
	src.stats.Store(&transport.PublisherStats{})
	m, err := gateway.NewMetrics(gateway.MetricsConfig{
		Events:                  events,
		PublisherStats:          func() transport.PublisherStats { return *src.stats.Load() },
		Retried:                 src.f(&src.retried),
		Parked:                  src.f(&src.parked),
		Deduplicated:            src.f(&src.deduplicated),
		CorrelationWritesFailed: src.f(&src.corrFailed),
	})
	if err != nil {
		t.Fatal(err)
	}
	gcfg := gateway.Config{ServiceName: "gateway_test"}
	deps := gateway.Deps{
		Publisher:   b,
		Events:      events,
		Correlation: store,
		Checks:      []gateway.Check{gateway.BrokerCheck(b)},
		Metrics:     m,
	}
	for _, o := range opts {
		o(&gcfg, &deps)
	}
	gw, err := gateway.New(gcfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, broker: broker, bus: b, events: events, store: store, metrics: m, gw: gw, src: src}
}

// subscribe binds a queue of its own to pattern and returns its messages.
func (f *fixture) subscribe(pattern string) <-chan *message.Message {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	queue := "test." + f.t.Name()
	sub := f.broker.Subscriber(transport.SubscriberConfig{QueueName: func(string) string { return queue }})
	f.t.Cleanup(func() { _ = sub.Close() })
	ch, err := sub.Subscribe(ctx, pattern)
	if err != nil {
		f.t.Fatal(err)
	}
	return ch
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case msg := <-ch:
		msg.Ack()
		return msg
	case <-time.After(5 * time.Second):
		t.Fatal("no message received within 5 s")
		return nil
	}
}

// request describes one call; a nil header map means Content-Type JSON.
type request struct {
	method, path, body string
	header             map[string]string
}

func (f *fixture) do(r request) *httptest.ResponseRecorder {
	f.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if r.method == http.MethodPost && r.header == nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.gw.ServeHTTP(rec, req)
	return rec
}

func post(path, body string) request { return request{method: http.MethodPost, path: path, body: body} }
func get(path string) request        { return request{method: http.MethodGet, path: path} }

// answer checks the status and that the body is a JSON object, and returns it.
func answer(t *testing.T, rec *httptest.ResponseRecorder, want int) map[string]any {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status = %d, want %d; body: %s", rec.Code, want, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json; body: %s", ct, rec.Body)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, rec.Body)
	}
	if want >= 400 {
		if msg, _ := m["error"].(string); msg == "" {
			t.Fatalf("error answer without an error message: %s", rec.Body)
		}
	}
	return m
}

// errorContains checks the error message of an error answer.
func errorContains(t *testing.T, m map[string]any, want string) {
	t.Helper()
	if msg, _ := m["error"].(string); !strings.Contains(msg, want) {
		t.Errorf("error = %q, want it to contain %q", msg, want)
	}
}

// metricValue sums the samples of a family whose labels include want.
func metricValue(t *testing.T, m *gateway.Metrics, name string, want map[string]string) (float64, bool) {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	found := false
	for _, fam := range fams {
		if fam.GetName() != name {
			continue
		}
	next:
		for _, s := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			found = true
			sum += sampleValue(s)
		}
	}
	return sum, found
}

func sampleValue(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	case s.Untyped != nil:
		return s.Untyped.GetValue()
	}
	return 0
}

// eventually polls cond until it holds or 5 s passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still false after 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakePublisher fails or blocks as a test needs.
type fakePublisher struct {
	err         error
	entered     chan struct{}         // receives once Publish starts, if set
	release     chan struct{}         // Publish waits for it, if set
	ctxErr      atomic.Pointer[error] // the context's Err when Publish was called
	hadDeadline atomic.Bool
	got         atomic.Pointer[envelope.Envelope]
}

func (p *fakePublisher) Publish(ctx context.Context, envs ...envelope.Envelope) error {
	err := ctx.Err()
	p.ctxErr.Store(&err)
	_, ok := ctx.Deadline()
	p.hadDeadline.Store(ok)
	if len(envs) > 0 {
		p.got.Store(&envs[0])
	}
	if p.entered != nil {
		p.entered <- struct{}{}
	}
	if p.release != nil {
		<-p.release
	}
	return p.err
}

func TestMain(m *testing.M) {
	// go-redis logs every refused dial on its global logger; the tests
	// that make Redis unreachable do so on purpose.
	redis.SetLogger(quietRedis{})
	os.Exit(m.Run())
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
