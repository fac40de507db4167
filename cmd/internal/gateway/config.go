package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/cmd/internal/console"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/internal/settings"
)

// Defaults of Config.
const (
	DefaultServiceName        = "bloodbank"
	DefaultMaxBodyBytes       = 1 << 20
	DefaultAppName            = "http-client"
	DefaultPublishTimeout     = 10 * time.Second
	DefaultRetryAfter         = 5 * time.Second
	DefaultReadyTimeout       = 2 * time.Second
	DefaultCorrelationTimeout = 5 * time.Second
	DefaultReadHeaderTimeout  = 5 * time.Second
	DefaultReadTimeout        = 30 * time.Second
	DefaultWriteTimeout       = 30 * time.Second
	DefaultIdleTimeout        = 120 * time.Second
	DefaultShutdownTimeout    = 10 * time.Second
)

// Settings are where a binary serves the gateway and who may POST to it,
// read with internal/settings. HTTP_HOST and HTTP_PORT are the Python
// service's (wire-contract section 7).
type Settings struct {
	// Host is HTTP_HOST, the address to listen on.
	Host string `env:"HTTP_HOST" envDefault:"0.0.0.0"`
	// Port is HTTP_PORT; 0 picks a free port.
	Port int `env:"HTTP_PORT" envDefault:"8682"`
	// Token is HTTP_TOKEN, Config.Token. It is never logged.
	Token string `env:"HTTP_TOKEN"`
}

// Addr is the host:port to listen on.
func (s Settings) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Validate reports a port out of range.
func (s Settings) Validate() error {
	if s.Port < 0 || s.Port > 65535 {
		return settings.Join(fmt.Errorf("HTTP_PORT: want 0-65535, got %d", s.Port))
	}
	return nil
}

// LogValue logs the address and whether a token is set, never the token.
func (s Settings) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", s.Addr()), slog.Bool("token", s.Token != ""))
}

// String keeps fmt from printing the token.
func (s Settings) String() string {
	return fmt.Sprintf("{Addr:%s Token:%t}", s.Addr(), s.Token != "")
}

// GoString keeps %#v from printing the token.
func (s Settings) GoString() string { return "gateway.Settings" + s.String() }

// Config configures a Server. The zero value is usable: every field has a
// default.
type Config struct {
	// ServiceName is what GET /healthz reports (SERVICE_NAME). Optional;
	// default "bloodbank".
	ServiceName string
	// Token is HTTP_TOKEN: when set, every POST must carry
	// "Authorization: Bearer <Token>" (401 otherwise). Optional; default
	// empty, no authentication. It is never logged.
	Token string
	// MaxBodyBytes bounds a request body (413 beyond). Optional; default
	// 1 MiB.
	MaxBodyBytes int64
	// AppName is source.app of the envelopes the payload endpoints build.
	// Optional; default "http-client", as Python's create_http_envelope.
	AppName string
	// PublishTimeout bounds one publish, on top of the bus's own confirm
	// timeout (BB_PUBLISH_TIMEOUT). Optional; default 10 s. Keep it below
	// WriteTimeout, or the client never sees the 503.
	PublishTimeout time.Duration
	// RetryAfter is the Retry-After of a 503 after a failed publish,
	// rounded up to whole seconds. Optional; default 5 s.
	RetryAfter time.Duration
	// ReadyTimeout bounds the checks of GET /readyz, run concurrently.
	// Optional; default 2 s.
	ReadyTimeout time.Duration
	// CorrelationTimeout bounds a correlation read. Optional; default 5 s.
	CorrelationTimeout time.Duration
	// CorrelationMaxDepth bounds the ancestors and descendants of a
	// correlation dump. Optional; default 0, the store's default (100).
	CorrelationMaxDepth int
	// ExchangeName is the topic exchange GET /asyncapi.json describes
	// (EXCHANGE_NAME). Optional; default "bloodbank.events.v1".
	ExchangeName string
	// BrokerURL is RABBIT_URL, whose host GET /asyncapi.json names as the
	// AMQP server; its credentials never reach the document. Optional;
	// default a broker on localhost.
	BrokerURL string
	// StrictTypes refuses payloads that Python's lax mode would convert
	// (BB_STRICT_TYPES). Optional; by default they are converted and
	// published in canonical form, as a Python gateway would accept them.
	StrictTypes bool

	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// http.Server timeouts of ListenAndServe and Serve. Optional; defaults
	// 5 s, 30 s, 30 s and 120 s.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// ShutdownTimeout bounds how long ListenAndServe and Serve wait for
	// in-flight requests once their context is done. Optional; default 10 s.
	ShutdownTimeout time.Duration

	// Logger receives one line per publish and per failure (never a body or
	// the token). Optional; default discards everything.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.AppName == "" {
		c.AppName = DefaultAppName
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.PublishTimeout, DefaultPublishTimeout},
		{&c.RetryAfter, DefaultRetryAfter},
		{&c.ReadyTimeout, DefaultReadyTimeout},
		{&c.CorrelationTimeout, DefaultCorrelationTimeout},
		{&c.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{&c.ReadTimeout, DefaultReadTimeout},
		{&c.WriteTimeout, DefaultWriteTimeout},
		{&c.IdleTimeout, DefaultIdleTimeout},
		{&c.ShutdownTimeout, DefaultShutdownTimeout},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem of the configuration at once. Zero values
// are valid: they stand for the defaults.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBodyBytes is %d, want > 0 (or 0 for the default 1 MiB)", c.MaxBodyBytes))
	}
	if c.CorrelationMaxDepth < 0 {
		errs = append(errs, fmt.Errorf("CorrelationMaxDepth is %d, want >= 0", c.CorrelationMaxDepth))
	}
	if c.Token != strings.TrimSpace(c.Token) || strings.ContainsAny(c.Token, " \t\r\n") {
		// Never quote the token.
		//lint:ignore ST1005 the message starts with the config field's name
		errs = append(errs, errors.New("Token (HTTP_TOKEN) contains white space, which no Authorization header can carry"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"PublishTimeout", c.PublishTimeout}, {"RetryAfter", c.RetryAfter}, {"ReadyTimeout", c.ReadyTimeout},
		{"CorrelationTimeout", c.CorrelationTimeout}, {"ReadHeaderTimeout", c.ReadHeaderTimeout},
		{"ReadTimeout", c.ReadTimeout}, {"WriteTimeout", c.WriteTimeout}, {"IdleTimeout", c.IdleTimeout},
		{"ShutdownTimeout", c.ShutdownTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is %s, want >= 0", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}

// Publisher publishes envelopes under their event types and returns once
// the broker confirmed them. *bus.Bus is one.
type Publisher interface {
	Publish(ctx context.Context, envs ...envelope.Envelope) error
}

// Tracer reads the correlation graph. correlation.Store (and so
// *correlation.RedisStore and *correlation.EmbeddedStore) is one.
type Tracer interface {
	Debug(ctx context.Context, id uuid.UUID, maxDepth int) (correlation.Dump, error)
}

// CostTracer is a Tracer that also knows the cost rolled up on the root of
// an event's chain; *correlation.RedisStore is one. With it, GET
// /events/{event_id}/correlation adds "cost" to its answer.
type CostTracer interface {
	Tracer
	EventCost(ctx context.Context, id uuid.UUID) (correlation.CostTotals, error)
}

// Check is one thing GET /readyz verifies. Func returns nil when the
// dependency is reachable, or an error saying why not; it must honour ctx.
type Check struct {
	// Name names the dependency in the /readyz answer ("broker", "redis").
	Name string
	Func func(ctx context.Context) error
}

// BrokerCheck checks the bus's connection to the broker (bus.Bus.Ready).
func BrokerCheck(b interface{ Ready() error }) Check {
	return Check{Name: "broker", Func: func(context.Context) error { return b.Ready() }}
}

// RedisCheck pings Redis through a go-redis client (redis.UniversalClient,
// *redis.Client…).
func RedisCheck(c interface {
	Ping(ctx context.Context) *redis.StatusCmd
}) Check {
	return Check{Name: "redis", Func: func(ctx context.Context) error { return c.Ping(ctx).Err() }}
}

// Deps are what a Server works with.
type Deps struct {
	// Publisher publishes the events the POST endpoints accept. Required;
	// usually the *bus.Bus.
	Publisher Publisher
	// Events is the catalogue: it validates payloads and answers /schemas.
	// Required; usually catalog.New().
	Events *domains.Registry
	// Correlation answers GET /events/{event_id}/correlation. Optional;
	// without it that endpoint answers 501.
	Correlation Tracer
	// Checks are what GET /readyz verifies, in order. Optional; without
	// any, the gateway is ready as soon as it serves.
	Checks []Check
	// Metrics is served on /metrics and counts the gateway's requests.
	// Optional; default NewMetrics(MetricsConfig{Events: Events}), which has
	// no publisher or middleware sources.
	Metrics *Metrics
	// MCP serves the Model Context Protocol (streamable HTTP) at /mcp, for
	// AI agents; usually mcpserver.Server.HTTPHandler. With Config.Token
	// set, every /mcp request, GET and DELETE included, needs the token:
	// its sessions publish and read the bus. Optional; without it /mcp is a
	// 404.
	MCP http.Handler
	// PoisonQueues opens a service's poison queue for the console's
	// /ui/dlq; usually console.PoisonQueues(bus). Optional; without it that
	// page says it has no access.
	PoisonQueues console.PoisonOpener
	// Tail subscribes GET /events/stream, the live tail; usually
	// bus.Bus.TemporarySubscriber. Optional; without it the stream
	// answers 501.
	Tail console.TailSubscriber
}

// Validate reports every missing dependency at once.
func (d Deps) Validate() error {
	var errs []error
	if d.Publisher == nil {
		errs = append(errs, errors.New("Deps.Publisher is required"))
	}
	if d.Events == nil {
		errs = append(errs, errors.New("Deps.Events is required"))
	}
	for i, c := range d.Checks {
		if c.Name == "" || c.Func == nil {
			errs = append(errs, fmt.Errorf("Deps.Checks[%d] needs a Name and a Func", i))
		}
	}
	return errors.Join(errs...)
}
