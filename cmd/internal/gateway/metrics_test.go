package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/domains/catalog"
)

func scrape(t *testing.T, f *fixture) string {
	t.Helper()
	rec := f.do(get("/metrics"))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q", ct)
	}
	return rec.Body.String()
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("/metrics lacks the line %q", l)
		}
	}
}

func TestMetrics_countersFollowTheirSources(t *testing.T) {
	f := newFixture(t)
	text := scrape(t, f)
	wantLines(t, text,
		"bloodbank_published_total 0", "bloodbank_confirmed_total 0", "bloodbank_unroutable_total 0",
		"bloodbank_publish_failed_total 0", "bloodbank_consumed_total 0", "bloodbank_retried_total 0",
		"bloodbank_parked_total 0", "bloodbank_deduplicated_total 0", "bloodbank_correlation_writes_failed_total 0")

	f.src.stats.Store(&transport.PublisherStats{Published: 7, Confirmed: 6, Unroutable: 2, Failed: 1})
	f.src.retried.Add(3)
	f.src.parked.Add(1)
	f.src.deduplicated.Add(4)
	f.src.corrFailed.Add(5)
	text = scrape(t, f)
	wantLines(t, text,
		"bloodbank_published_total 7", "bloodbank_confirmed_total 6", "bloodbank_unroutable_total 2",
		"bloodbank_publish_failed_total 1", "bloodbank_retried_total 3", "bloodbank_parked_total 1",
		"bloodbank_deduplicated_total 4", "bloodbank_correlation_writes_failed_total 5",
		"# TYPE bloodbank_published_total counter", "# TYPE bloodbank_retried_total counter")
	if !strings.Contains(text, "go_goroutines") || !strings.Contains(text, "process_") {
		t.Error("/metrics lacks the Go runtime or process metrics")
	}
}

func TestMetrics_withoutSourcesOnlyWhatIsKnown(t *testing.T) {
	m, err := gateway.NewMetrics(gateway.MetricsConfig{OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName())
	}
	// Vectors without samples are not gathered; consumed always is.
	if got := strings.Join(names, " "); got != "bloodbank_consumed_total" {
		t.Errorf("gathered %s, want only bloodbank_consumed_total", got)
	}
}

func TestMetrics_httpRequestsByRouteAndCode(t *testing.T) {
	f := newFixture(t)
	f.subscribe("#")
	f.do(post("/events/custom", sectionThreeExample))
	f.do(post("/events/custom", sectionThreeExample))
	f.do(post("/events/custom", `{`))
	f.do(post("/events/agent.thread.prompt", `{}`))
	f.do(get("/no/such/thing"))
	f.do(get("/events/" + strings.Repeat("x", 40) + "/correlation"))
	text := scrape(t, f)
	wantLines(t, text,
		`bloodbank_http_requests_total{code="200",route="POST /events/custom"} 2`,
		`bloodbank_http_requests_total{code="400",route="POST /events/custom"} 1`,
		`bloodbank_http_requests_total{code="422",route="POST /events/{routing_key}"} 1`,
		`bloodbank_http_requests_total{code="404",route="other"} 1`,
		`bloodbank_http_requests_total{code="400",route="GET /events/{event_id}/correlation"} 1`)
}

func TestMetrics_middlewareAndWatermillMetricsOnAService(t *testing.T) {
	f := newFixture(t)
	f.bus.DecoratePublisher(f.metrics.DecoratePublisher)
	svc, err := f.bus.NewService("metrics_test")
	if err != nil {
		t.Fatal(err)
	}
	f.metrics.AddRouterMetrics(svc.Router())
	if err := svc.HandleMessage("audit", "#", func(*message.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	<-svc.Running()

	answer(t, f.do(post("/events/agent/thread/prompt", `{"provider":"p","prompt":"q"}`)), http.StatusOK)
	answer(t, f.do(post("/events/artifact.{action}", `{"action":"created","kind":"k","uri":"u"}`)), http.StatusOK)
	unknown := strings.Replace(sectionThreeExample, `"agent.thread.prompt"`, `"billing.invoice.paid"`, 1)
	answer(t, f.do(post("/events/custom", unknown)), http.StatusOK)

	eventually(t, "three messages handled", func() bool {
		n, _ := metricValue(t, f.metrics, "bloodbank_handler_duration_seconds", map[string]string{"handler": "audit"})
		return n == 3
	})
	for key, want := range map[string]float64{"agent.thread.prompt": 1, "artifact.created": 1, "other": 1, "billing.invoice.paid": 0} {
		n, _ := metricValue(t, f.metrics, "bloodbank_handler_duration_seconds", map[string]string{"handler": "audit", "routing_key": key})
		if n != want {
			t.Errorf("handler_duration_seconds{routing_key=%q} count = %v, want %v", key, n, want)
		}
	}
	if n, _ := metricValue(t, f.metrics, "bloodbank_consumed_total", nil); n != 3 {
		t.Errorf("consumed_total = %v, want 3", n)
	}
	if n, ok := metricValue(t, f.metrics, "bloodbank_watermill_handler_execution_time_seconds", map[string]string{"handler_name": "audit"}); !ok || n != 3 {
		t.Errorf("Watermill handler metric: %v samples (found %v), want 3", n, ok)
	}
	if n, ok := metricValue(t, f.metrics, "bloodbank_watermill_publish_time_seconds", nil); !ok || n != 3 {
		t.Errorf("Watermill publish metric: %v samples (found %v), want 3", n, ok)
	}
	text := scrape(t, f)
	wantLines(t, text, "bloodbank_consumed_total 3")
	if !strings.Contains(text, `bloodbank_handler_duration_seconds_bucket{handler="audit",routing_key="agent.thread.prompt",le="+Inf"} 1`) {
		t.Error("/metrics lacks the handler histogram")
	}
}

func TestMetrics_consumedFromItsSourceWhenGiven(t *testing.T) {
	m, err := gateway.NewMetrics(gateway.MetricsConfig{Consumed: func() float64 { return 42 }, OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	if _, err := h(message.NewMessage("1", nil)); err != nil {
		t.Fatal(err)
	}
	if n, _ := metricValue(t, m, "bloodbank_consumed_total", nil); n != 42 {
		t.Errorf("consumed_total = %v, want the source's 42", n)
	}
}

func TestMetrics_routingKeyLabelIsBounded(t *testing.T) {
	events, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	m, err := gateway.NewMetrics(gateway.MetricsConfig{Events: events, OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"agent.thread.prompt":   "agent.thread.prompt",
		"artifact.deleted":      "artifact.deleted",
		"artifact.moved":        gateway.OtherLabel,
		"billing.invoice.paid":  gateway.OtherLabel,
		"":                      gateway.OtherLabel,
		"agent.thread.prompt.x": gateway.OtherLabel,
	} {
		if got := m.RoutingKeyLabel(key); got != want {
			t.Errorf("RoutingKeyLabel(%q) = %q, want %q", key, got, want)
		}
	}
	noEvents, err := gateway.NewMetrics(gateway.MetricsConfig{OmitRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := noEvents.RoutingKeyLabel("agent.thread.prompt"); got != gateway.OtherLabel {
		t.Errorf("without a registry: %q, want other", got)
	}
}

func TestMetrics_registerCallerCollectors(t *testing.T) {
	f := newFixture(t)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "myservice_things_total", Help: "Things."})
	if err := f.metrics.Register(c); err != nil {
		t.Fatal(err)
	}
	c.Add(2)
	wantLines(t, scrape(t, f), "myservice_things_total 2")
	if err := f.metrics.Register(c); err == nil {
		t.Error("registering the same collector twice was accepted")
	}
}

func TestMetrics_runawayParkedByRule(t *testing.T) {
	counts := map[string]float64{"depth": 2, "repeats": 5}
	m, err := gateway.NewMetrics(gateway.MetricsConfig{OmitRuntime: true, RunawayParked: func(rule string) float64 { return counts[rule] }})
	if err != nil {
		t.Fatal(err)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, fam := range fams {
		if fam.GetName() != "bloodbank_runaway_parked_total" {
			continue
		}
		for _, metric := range fam.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "rule" {
					got[l.GetValue()] = metric.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"depth": 2, "repeats": 5, "descendants": 0}
	if len(got) != len(want) {
		t.Fatalf("bloodbank_runaway_parked_total = %v, want %v", got, want)
	}
	for rule, n := range want {
		if got[rule] != n {
			t.Errorf("bloodbank_runaway_parked_total{rule=%q} = %v, want %v", rule, got[rule], n)
		}
	}
}
