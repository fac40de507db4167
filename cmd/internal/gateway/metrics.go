package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	wmetrics "github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/domains"
)

// Metric names and label values that are part of the dashboards' contract.
const (
	MetricsNamespace = "bloodbank"
	// WatermillSubsystem prefixes Watermill's own metrics:
	// bloodbank_watermill_handler_execution_time_seconds, …
	WatermillSubsystem = "watermill"
	// OtherLabel stands for a routing key the registry does not know, or an
	// unmatched HTTP route, so that no label takes unbounded values.
	OtherLabel = "other"
)

// DefaultHandlerBuckets are the buckets of bloodbank_handler_duration_seconds:
// 1 ms to 30 s, since a handler may call a model or a remote service.
var DefaultHandlerBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// MetricsConfig configures Metrics. Every field is optional.
type MetricsConfig struct {
	// Events bounds the routing_key label: keys of the registry keep their
	// name, any other is "other". Optional; without it every key is "other".
	Events *domains.Registry

	// PublisherStats reads the publisher's counters at scrape time
	// (bus.Bus.PublisherStats). Optional; without it bloodbank_published_total,
	// _confirmed_total, _unroutable_total and _publish_failed_total are not
	// exported.
	PublisherStats func() transport.PublisherStats

	// Consumed counts messages consumed. Optional; default the number of
	// handler invocations Metrics.Middleware saw.
	Consumed func() float64
	// Retried counts handler retries (the retry middleware). Optional;
	// not exported without it, as are the next three.
	Retried func() float64
	// Parked counts messages sent to a poison queue.
	Parked func() float64
	// Deduplicated counts messages dropped as duplicates.
	Deduplicated func() float64
	// CorrelationWritesFailed counts correlation links not written
	// (correlation.Recorder.Failed).
	CorrelationWritesFailed func() float64
	// RunawayParked counts messages the runaway guard stopped under a rule
	// (envelope.RuleDepth, RuleRepeats, RuleDescendants), exported as
	// bloodbank_runaway_parked_total{rule}. Optional.
	RunawayParked func(rule string) float64

	// HandlerBuckets are the buckets of bloodbank_handler_duration_seconds.
	// Optional; default DefaultHandlerBuckets.
	HandlerBuckets []float64
	// OmitRuntime leaves out the Go runtime and process collectors.
	// Optional; default false (they are exported).
	OmitRuntime bool
	// Logger. Optional; default discards everything.
	Logger *slog.Logger
}

// Metrics owns the Prometheus registry a service exports on /metrics: the
// Bloodbank counters, the handler duration histogram, Watermill's metrics
// and the gateway's request counter. A nil source is simply not exported.
type Metrics struct {
	reg          *prometheus.Registry
	events       *domains.Registry
	log          *slog.Logger
	builder      wmetrics.PrometheusMetricsBuilder
	duration     *prometheus.HistogramVec
	httpRequests *prometheus.CounterVec
	consumed     atomic.Uint64
}

// NewMetrics builds the registry and registers every metric whose source
// is given.
func NewMetrics(cfg MetricsConfig) (*Metrics, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HandlerBuckets == nil {
		cfg.HandlerBuckets = DefaultHandlerBuckets
	}
	m := &Metrics{reg: prometheus.NewRegistry(), events: cfg.Events, log: cfg.Logger}
	m.builder = wmetrics.NewPrometheusMetricsBuilder(m.reg, MetricsNamespace, WatermillSubsystem)
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: MetricsNamespace,
		Name:      "handler_duration_seconds",
		Help:      "How long a handler took per message, by routing key (other: not in the catalogue) and handler.",
		Buckets:   cfg.HandlerBuckets,
	}, []string{"routing_key", "handler"})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: MetricsNamespace,
		Name:      "http_requests_total",
		Help:      "HTTP requests the gateway answered, by route pattern (other: no route) and status code.",
	}, []string{"route", "code"})
	cs := []prometheus.Collector{m.duration, m.httpRequests}

	consumed := cfg.Consumed
	if consumed == nil {
		consumed = func() float64 { return float64(m.consumed.Load()) }
	}
	for _, c := range []struct {
		name, help string
		fn         func() float64
	}{
		{"consumed_total", "Messages consumed.", consumed},
		{"retried_total", "Handler attempts retried.", cfg.Retried},
		{"parked_total", "Messages parked in a poison queue.", cfg.Parked},
		{"deduplicated_total", "Messages dropped as duplicates of an event already handled.", cfg.Deduplicated},
		{"correlation_writes_failed_total", "Correlation links that could not be written to Redis.", cfg.CorrelationWritesFailed},
	} {
		if c.fn != nil {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: MetricsNamespace, Name: c.name, Help: c.help,
			}, c.fn))
		}
	}
	if cfg.RunawayParked != nil {
		for _, rule := range []string{envelope.RuleDepth, envelope.RuleRepeats, envelope.RuleDescendants} {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: MetricsNamespace, Name: "runaway_parked_total",
				Help:        "Messages the runaway-chain guard parked, by the rule they broke.",
				ConstLabels: prometheus.Labels{"rule": rule},
			}, func() float64 { return cfg.RunawayParked(rule) }))
		}
	}
	if cfg.PublisherStats != nil {
		cs = append(cs, newPublisherCollector(cfg.PublisherStats))
	}
	if !cfg.OmitRuntime {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	var errs []error
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cannot register metrics: %w", err)
	}
	return m, nil
}

// Registry is the Prometheus registry, for Gather in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register adds collectors of the caller's (a middleware's own counters,
// for instance) to the registry served on /metrics.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, m.reg.Register(c))
	}
	return errors.Join(errs...)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry: m.reg,
		ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	})
}

// WatermillBuilder is Watermill's metrics builder on this registry
// (namespace bloodbank, subsystem watermill), for callers that decorate
// subscribers or build the router middleware themselves.
func (m *Metrics) WatermillBuilder() wmetrics.PrometheusMetricsBuilder { return m.builder }

// AddRouterMetrics instruments a Watermill router (bus.Service.Router, or a
// plain message.Router) before it runs: Watermill's handler, publisher and
// subscriber metrics (AddPrometheusRouterMetrics), then Middleware. Added
// first, they are the outermost middleware, as the architecture's order
// wants (recover · metrics · poison · …).
func (m *Metrics) AddRouterMetrics(r *message.Router) {
	m.builder.AddPrometheusRouterMetrics(r)
	r.AddMiddleware(m.Middleware)
}

// DecoratePublisher adds Watermill's publish metrics
// (bloodbank_watermill_publish_time_seconds) to a publisher; its signature
// fits bus.Bus.DecoratePublisher. It returns pub undecorated, and logs why,
// if the metric cannot be registered (a conflicting collector of the
// caller's).
func (m *Metrics) DecoratePublisher(pub message.Publisher) message.Publisher {
	d, err := m.builder.DecoratePublisher(pub)
	if err != nil {
		m.log.Warn("publisher metrics unavailable", slog.String("error", err.Error()))
		return pub
	}
	return d
}

// Middleware is a Watermill HandlerMiddleware that observes
// bloodbank_handler_duration_seconds by routing key and handler, and counts
// the messages it sees (bloodbank_consumed_total, unless a Consumed source
// was given). Handler names must be bounded, as they are when code chooses
// them.
func (m *Metrics) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		m.consumed.Add(1)
		key := envelope.EventType(msg)
		if key == "" {
			key = msg.Metadata.Get(envelope.MetaRoutingKey)
		}
		handler := message.HandlerNameFromCtx(msg.Context())
		if handler == "" {
			handler = "none"
		}
		start := time.Now()
		defer func() {
			m.duration.WithLabelValues(m.RoutingKeyLabel(key), handler).Observe(time.Since(start).Seconds())
		}()
		return h(msg)
	}
}

// RoutingKeyLabel maps a routing key to a bounded label value: the key of a
// registered type, a template's enumerated expansion ("artifact.created"),
// the template itself for a free placeholder, or OtherLabel.
func (m *Metrics) RoutingKeyLabel(key string) string {
	if m.events == nil || key == "" {
		return OtherLabel
	}
	e, err := m.events.LookupKey(key)
	if err != nil {
		return OtherLabel
	}
	if e.IsTemplate() && !slices.Contains(e.RoutingKeys(), key) {
		return e.RoutingKey()
	}
	if e.IsTemplate() {
		return key
	}
	return e.RoutingKey()
}

// publisherCollector reads the publisher's counters once per scrape, so the
// four values are one consistent snapshot and nothing is counted twice.
type publisherCollector struct {
	stats                                  func() transport.PublisherStats
	published, confirmed, unroutable, fail *prometheus.Desc
}

func newPublisherCollector(stats func() transport.PublisherStats) *publisherCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(MetricsNamespace, "", name), help, nil, nil)
	}
	return &publisherCollector{
		stats:      stats,
		published:  desc("published_total", "Events handed to the broker."),
		confirmed:  desc("confirmed_total", "Events the broker confirmed."),
		unroutable: desc("unroutable_total", "Events the broker confirmed but could route to no queue."),
		fail:       desc("publish_failed_total", "Publishes that failed (nack, closed channel, timeout)."),
	}
}

func (c *publisherCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.published
	ch <- c.confirmed
	ch <- c.unroutable
	ch <- c.fail
}

func (c *publisherCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, v := range []struct {
		d *prometheus.Desc
		n int64
	}{{c.published, s.Published}, {c.confirmed, s.Confirmed}, {c.unroutable, s.Unroutable}, {c.fail, s.Failed}} {
		mt, err := prometheus.NewConstMetric(v.d, prometheus.CounterValue, float64(v.n))
		if err != nil {
			mt = prometheus.NewInvalidMetric(v.d, err)
		}
		ch <- mt
	}
}
