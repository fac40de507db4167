package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"
	"github.com/joho/godotenv"

	"github.com/33god/bloodbank-go/bus/amqp"
)

// Config holds every setting of a Bloodbank service. The variables shared
// with the Python services (wire-contract section 7) keep their names, so
// one .env serves both; the settings only this project has start with BB_.
// The README's settings table lists them all.
type Config struct {
	ServiceName  string `env:"SERVICE_NAME" envDefault:"bloodbank"`
	Environment  string `env:"ENVIRONMENT" envDefault:"dev"`
	RabbitURL    string `env:"RABBIT_URL"`
	ExchangeName string `env:"EXCHANGE_NAME" envDefault:"bloodbank.events.v1"`

	RedisHost          string `env:"REDIS_HOST" envDefault:"localhost"`
	RedisPort          int    `env:"REDIS_PORT" envDefault:"6379"`
	RedisDB            int    `env:"REDIS_DB" envDefault:"0"`
	RedisPassword      string `env:"REDIS_PASSWORD"`
	RedisURL           string `env:"REDIS_URL"`
	CorrelationTTLDays int    `env:"CORRELATION_TTL_DAYS" envDefault:"30"`

	HTTPHost  string `env:"HTTP_HOST" envDefault:"0.0.0.0"`
	HTTPPort  int    `env:"HTTP_PORT" envDefault:"8682"`
	HTTPToken string `env:"HTTP_TOKEN"`

	Prefetch          int           `env:"BB_PREFETCH" envDefault:"10"`
	Consumers         int           `env:"BB_CONSUMERS" envDefault:"0"`
	QueueType         string        `env:"BB_QUEUE_TYPE" envDefault:"classic"`
	PublisherChannels int           `env:"BB_PUBLISHER_CHANNELS" envDefault:"4"`
	UnroutableIsError bool          `env:"BB_UNROUTABLE_IS_ERROR" envDefault:"false"`
	ConnectTimeout    time.Duration `env:"BB_CONNECT_TIMEOUT" envDefault:"30s"`
	PublishTimeout    time.Duration `env:"BB_PUBLISH_TIMEOUT" envDefault:"10s"`
	DrainTimeout      time.Duration `env:"BB_DRAIN_TIMEOUT" envDefault:"30s"`
	LogFormat         string        `env:"BB_LOG_FORMAT" envDefault:"auto"`
	LogLevel          string        `env:"BB_LOG_LEVEL" envDefault:"info"`
	Tracing           string        `env:"BB_TRACING" envDefault:"off"`
}

// LoadConfig reads the settings from environ (as os.Environ gives it) and
// from the .env file at dotenv, if that file exists (an empty path reads no
// file). The environment wins over the file. Names are matched
// case-insensitively, as the Python services do. Every problem is reported
// at once, each naming its variable; secrets are never quoted.
func LoadConfig(environ []string, dotenv string) (Config, error) {
	vars := map[string]string{}
	if dotenv != "" {
		fileVars, err := godotenv.Read(dotenv)
		switch {
		case err == nil:
			for k, v := range fileVars {
				vars[strings.ToUpper(k)] = v
			}
		case !errors.Is(err, os.ErrNotExist):
			return Config{}, fmt.Errorf("cannot read %s: %w", dotenv, err)
		}
	}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[strings.ToUpper(k)] = v
		}
	}
	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars}); err != nil {
		return Config{}, describeEnvError(err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// describeEnvError names the variable in each parse error, which
// caarlos0/env names by struct field.
func describeEnvError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("invalid settings: %w", err)
	}
	var problems []string
	t := reflect.TypeFor[Config]()
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			name := pe.Name
			if f, ok := t.FieldByName(pe.Name); ok {
				name = f.Tag.Get("env")
			}
			problems = append(problems, fmt.Sprintf("%s: want %s", name, describeType(pe.Type)))
			continue
		}
		problems = append(problems, e.Error())
	}
	return fmt.Errorf("invalid settings: %s", strings.Join(problems, "; "))
}

func describeType(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration such as 500ms, 10s or 2m"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	}
	return "a " + t.String()
}

// Validate reports every setting that is out of range, each by its variable.
func (c Config) Validate() error {
	var p []string
	if c.ServiceName == "" {
		p = append(p, "SERVICE_NAME: required")
	}
	if c.ExchangeName == "" {
		p = append(p, "EXCHANGE_NAME: required")
	}
	if c.RabbitURL != "" {
		if u, err := url.Parse(c.RabbitURL); err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
			p = append(p, "RABBIT_URL: want amqp://user:password@host:5672/vhost (got "+amqp.RedactURL(c.RabbitURL)+")")
		}
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			p = append(p, "REDIS_URL: want redis://[user:password@]host:port/db or rediss:// (got "+amqp.RedactURL(c.RedisURL)+")")
		}
	}
	if c.RedisPort < 1 || c.RedisPort > 65535 {
		p = append(p, fmt.Sprintf("REDIS_PORT: want 1-65535, got %d", c.RedisPort))
	}
	if c.RedisDB < 0 {
		p = append(p, fmt.Sprintf("REDIS_DB: want 0 or more, got %d", c.RedisDB))
	}
	if c.CorrelationTTLDays < 1 {
		p = append(p, fmt.Sprintf("CORRELATION_TTL_DAYS: want 1 or more, got %d", c.CorrelationTTLDays))
	}
	if c.HTTPPort < 0 || c.HTTPPort > 65535 {
		p = append(p, fmt.Sprintf("HTTP_PORT: want 0-65535, got %d", c.HTTPPort))
	}
	if c.Prefetch < 1 || c.Prefetch > 65535 {
		p = append(p, fmt.Sprintf("BB_PREFETCH: want 1-65535, got %d", c.Prefetch))
	}
	if c.Consumers < 0 {
		p = append(p, fmt.Sprintf("BB_CONSUMERS: want 0 (same as BB_PREFETCH) or more, got %d", c.Consumers))
	}
	if c.QueueType != amqp.QueueClassic && c.QueueType != amqp.QueueQuorum {
		p = append(p, fmt.Sprintf("BB_QUEUE_TYPE: want classic or quorum, got %q", c.QueueType))
	}
	if c.PublisherChannels < 1 {
		p = append(p, fmt.Sprintf("BB_PUBLISHER_CHANNELS: want 1 or more, got %d", c.PublisherChannels))
	}
	for name, d := range map[string]time.Duration{"BB_CONNECT_TIMEOUT": c.ConnectTimeout, "BB_PUBLISH_TIMEOUT": c.PublishTimeout, "BB_DRAIN_TIMEOUT": c.DrainTimeout} {
		if d <= 0 {
			p = append(p, fmt.Sprintf("%s: want a positive duration, got %s", name, d))
		}
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		p = append(p, fmt.Sprintf("BB_LOG_FORMAT: want auto, text or json, got %q", c.LogFormat))
	}
	if c.Tracing != "off" && c.Tracing != "stdout" {
		p = append(p, fmt.Sprintf("BB_TRACING: want off or stdout, got %q", c.Tracing))
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		p = append(p, "BB_LOG_LEVEL: "+err.Error())
	}
	if len(p) > 0 {
		slices.Sort(p)
		return fmt.Errorf("invalid settings: %s", strings.Join(p, "; "))
	}
	return nil
}

// embedded.Broker reports whether the settings select the in-process transport.
func (c Config) Embedded() bool { return c.RabbitURL == "" }

// EffectiveConsumers is BB_CONSUMERS, or BB_PREFETCH when that is 0.
func (c Config) EffectiveConsumers() int {
	if c.Consumers > 0 {
		return c.Consumers
	}
	return c.Prefetch
}

// LogValue logs the settings with their secrets redacted.
func (c Config) LogValue() slog.Value {
	rabbit := "embedded"
	if c.RabbitURL != "" {
		rabbit = amqp.RedactURL(c.RabbitURL)
	}
	redisPassword, httpToken := "unset", "unset"
	if c.RedisPassword != "" {
		redisPassword = "set"
	}
	if c.HTTPToken != "" {
		httpToken = "set"
	}
	return slog.GroupValue(
		slog.String("service", c.ServiceName),
		slog.String("environment", c.Environment),
		slog.String("rabbit_url", rabbit),
		slog.String("exchange", c.ExchangeName),
		slog.String("redis", fmt.Sprintf("%s:%d/%d", c.RedisHost, c.RedisPort, c.RedisDB)),
		slog.String("redis_password", redisPassword),
		slog.String("http_token", httpToken),
		slog.Int("prefetch", c.Prefetch),
		slog.Int("consumers", c.EffectiveConsumers()),
		slog.String("queue_type", c.QueueType),
	)
}
