package bus

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/internal/settings"
)

// Config holds the settings of the bus. The variables shared with the
// Python services (wire-contract section 7) keep their names, so one .env
// serves both; those only this project has start with BB_. The README's
// settings table lists every setting, including those that live with what
// uses them (correlation.Settings, the binaries').
type Config struct {
	// ServiceName names the service queue "{ExchangeName}.{ServiceName}"
	// and the broker connections.
	ServiceName string `env:"SERVICE_NAME" envDefault:"bloodbank"`
	// RabbitURL is the AMQP URL of the broker; empty selects the embedded
	// in-process transport.
	RabbitURL string `env:"RABBIT_URL"`
	// ExchangeName is the topic exchange every event is published to.
	ExchangeName string `env:"EXCHANGE_NAME" envDefault:"bloodbank.events.v1"`

	// Prefetch is the AMQP prefetch of a service queue.
	Prefetch int `env:"BB_PREFETCH" envDefault:"10"`
	// Consumers is how many deliveries of one queue are handled at once;
	// 0 means Prefetch.
	Consumers int `env:"BB_CONSUMERS" envDefault:"0"`
	// QueueType is amqp.QueueClassic or amqp.QueueQuorum.
	QueueType string `env:"BB_QUEUE_TYPE" envDefault:"classic"`
	// PublisherChannels is how many AMQP channels publishes are spread over.
	PublisherChannels int `env:"BB_PUBLISHER_CHANNELS" envDefault:"4"`
	// UnroutableIsError fails a publish that reached no queue, instead of
	// logging and counting it.
	UnroutableIsError bool `env:"BB_UNROUTABLE_IS_ERROR" envDefault:"false"`
	// ConnectTimeout bounds the wait for an unreachable broker at start.
	ConnectTimeout time.Duration `env:"BB_CONNECT_TIMEOUT" envDefault:"30s"`
	// PublishTimeout bounds the wait for a channel and a confirm.
	PublishTimeout time.Duration `env:"BB_PUBLISH_TIMEOUT" envDefault:"10s"`
	// DrainTimeout bounds the wait for in-flight handlers at shutdown.
	DrainTimeout time.Duration `env:"BB_DRAIN_TIMEOUT" envDefault:"30s"`
	// StrictTypes validates payloads strictly, refusing the values of the
	// wrong JSON type that Python's Pydantic models convert in their lax
	// mode (domains.Registry.Normalize).
	StrictTypes bool `env:"BB_STRICT_TYPES" envDefault:"false"`

	// MaxDepth is the causal depth budget of a chain: an event deeper than
	// this is parked by the runaway guard, and Bus.Publish refuses such a
	// child at once (envelope.ErrDepthExceeded). 0 turns the rule off.
	MaxDepth int `env:"BB_MAX_DEPTH" envDefault:"32"`
	// MaxRepeats parks an event whose ancestors hold one (event_type,
	// source.app) pair more often than this: a loop between agents. 0 turns
	// the rule off.
	MaxRepeats int `env:"BB_MAX_REPEATS" envDefault:"8"`
	// MaxDescendants parks the events of a root that caused more than this
	// many, counted in Redis per root across replicas. 0 turns the rule off.
	MaxDescendants int `env:"BB_MAX_DESCENDANTS" envDefault:"10000"`
}

// LoadConfig reads the settings from environ (as os.Environ gives it) and
// from the .env file at dotenv, if it exists; the environment wins. Names
// match case-insensitively, as in the Python services. Every problem is
// reported at once, each naming its variable; no value is quoted.
func LoadConfig(environ []string, dotenv string) (Config, error) {
	var cfg Config
	if err := settings.Load(environ, dotenv, &cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports every setting that is out of range, each by its variable.
func (c Config) Validate() error {
	var p []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			p = append(p, fmt.Errorf(format, args...))
		}
	}
	check(c.ServiceName != "", "SERVICE_NAME: required")
	check(c.ExchangeName != "", "EXCHANGE_NAME: required")
	if c.RabbitURL != "" {
		urls := amqp.SplitURLs(c.RabbitURL)
		check(len(urls) > 0, "RABBIT_URL: want amqp://user:password@host:5672/vhost, or several separated by commas (got %q)", c.RabbitURL)
		for _, one := range urls {
			u, err := url.Parse(one)
			check(err == nil && (u.Scheme == "amqp" || u.Scheme == "amqps") && u.Host != "",
				"RABBIT_URL: want amqp://user:password@host:5672/vhost, or several separated by commas (got %s)", amqp.RedactURL(one))
		}
	}
	check(c.Prefetch >= 1 && c.Prefetch <= 65535, "BB_PREFETCH: want 1-65535, got %d", c.Prefetch)
	check(c.Consumers >= 0, "BB_CONSUMERS: want 0 (same as BB_PREFETCH) or more, got %d", c.Consumers)
	check(c.QueueType == amqp.QueueClassic || c.QueueType == amqp.QueueQuorum, "BB_QUEUE_TYPE: want classic or quorum, got %q", c.QueueType)
	check(c.PublisherChannels >= 1, "BB_PUBLISHER_CHANNELS: want 1 or more, got %d", c.PublisherChannels)
	for name, n := range map[string]int{"BB_MAX_DEPTH": c.MaxDepth, "BB_MAX_REPEATS": c.MaxRepeats, "BB_MAX_DESCENDANTS": c.MaxDescendants} {
		check(n >= 0, "%s: want 0 (off) or more, got %d", name, n)
	}
	for name, d := range map[string]time.Duration{"BB_CONNECT_TIMEOUT": c.ConnectTimeout, "BB_PUBLISH_TIMEOUT": c.PublishTimeout, "BB_DRAIN_TIMEOUT": c.DrainTimeout} {
		check(d > 0, "%s: want a positive duration, got %s", name, d)
	}
	return settings.Join(p...)
}

// Embedded reports whether the settings select the in-process transport.
func (c Config) Embedded() bool { return c.RabbitURL == "" }

// EffectiveConsumers is BB_CONSUMERS, or BB_PREFETCH when that is 0.
func (c Config) EffectiveConsumers() int {
	if c.Consumers > 0 {
		return c.Consumers
	}
	return c.Prefetch
}

// LogValue logs the settings with the broker's password redacted.
func (c Config) LogValue() slog.Value {
	rabbit := "embedded"
	if c.RabbitURL != "" {
		rabbit = amqp.RedactURL(c.RabbitURL)
	}
	return slog.GroupValue(
		slog.String("service", c.ServiceName),
		slog.String("rabbit_url", rabbit),
		slog.String("exchange", c.ExchangeName),
		slog.Int("prefetch", c.Prefetch),
		slog.Int("consumers", c.EffectiveConsumers()),
		slog.String("queue_type", c.QueueType),
		slog.Int("publisher_channels", c.PublisherChannels),
	)
}
