package main

import (
	"context"
	"errors"
	"log/slog"
	"net/url"

	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/cmd/internal/binsettings"
	"github.com/33god/bloodbank-go/cmd/internal/telemetry"
	"github.com/33god/bloodbank-go/correlation"
)

// config is every setting bb reads: those of the packages it drives.
type config struct {
	binsettings.Common
}

// setup reads the settings and builds the logger they describe, writing
// to stderr: what every command that talks to the broker or Redis starts
// with.
func (a *app) setup() (config, *slog.Logger, error) {
	cfg, err := a.settings()
	if err != nil {
		return config{}, nil, err
	}
	logger, err := telemetry.NewLogger(a.stderr, cfg.Telemetry)
	if err != nil {
		return config{}, nil, usageErrorf("%v (fix the environment or .env)", err)
	}
	return cfg, logger, nil
}

// settings reads the settings from the environment and .env, and
// remembers their secrets so that no message prints them. A bad setting is
// the user's to fix: exit 1. --timeout bounds every wait on the broker.
func (a *app) settings() (config, error) {
	var c config
	if err := c.Load(a.environ, a.dotenv, nil); err != nil {
		return config{}, usageErrorf("%v (fix the environment or .env)", err)
	}
	a.secrets = append(a.secrets, c.Redis.Password, c.HTTP.Token)
	for _, raw := range append(amqp.SplitURLs(c.Bus.RabbitURL), c.Redis.URL) {
		if u, err := url.Parse(raw); err == nil {
			a.secrets = append(a.secrets, u.Query()["password"]...)
			if pw, ok := u.User.Password(); ok {
				a.secrets = append(a.secrets, pw)
			}
		}
	}
	c.Bus.ConnectTimeout = a.timeout
	c.Bus.PublishTimeout = a.timeout
	c.Bus.DrainTimeout = a.timeout
	return c, nil
}

// errNoRabbitURL explains why bb will not run on the embedded transport.
var errNoRabbitURL = errors.New("RABBIT_URL is not set: bb talks to a running RabbitMQ " +
	"(the embedded transport lives inside one process, so it cannot reach a running service); " +
	"set RABBIT_URL=amqp://user:password@host:5672/ in the environment or .env")

// connect reads the settings, builds the logger and opens the bus: what
// every bb command that talks to RabbitMQ does first. The caller closes
// the bus.
func (a *app) connect(ctx context.Context) (config, *slog.Logger, *bus.Bus, error) {
	cfg, logger, err := a.setup()
	if err != nil {
		return config{}, nil, nil, err
	}
	b, err := a.openBus(ctx, cfg.Bus, logger)
	if err != nil {
		return config{}, nil, nil, err
	}
	return cfg, logger, b, nil
}

// openBus connects to RabbitMQ within --timeout. Every failure is exit 2.
func (a *app) openBus(ctx context.Context, cfg bus.Config, logger *slog.Logger) (*bus.Bus, error) {
	if cfg.RabbitURL == "" {
		return nil, &exitError{code: exitInfra, err: errNoRabbitURL}
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	b, err := bus.Open(ctx, cfg, logger)
	if err != nil {
		return nil, infraErrorf("%v\ncheck that RabbitMQ is running and reachable at %s and that RABBIT_URL is right, or raise --timeout",
			err, amqp.RedactURL(cfg.RabbitURL))
	}
	return b, nil
}

// openStore connects to the correlation store in the Redis the settings
// name. maxDepth bounds the ancestors and descendants a read follows (0:
// the store's default). A bad Redis setting is exit 1; the caller closes
// the client.
func openStore(cfg config, logger *slog.Logger, maxDepth int) (redis.UniversalClient, *correlation.RedisStore, error) {
	telemetry.RouteRedisLogs(logger)
	client, err := correlation.NewUniversalClient(cfg.Redis)
	if err != nil {
		return nil, nil, usageErrorf("%v (fix REDIS_URL, REDIS_HOST, REDIS_PORT or REDIS_DB)", err)
	}
	storeConfig := cfg.Redis.RedisConfig()
	storeConfig.MaxDepth = maxDepth
	store, err := correlation.NewRedisStore(client, storeConfig)
	if err != nil {
		_ = client.Close()
		return nil, nil, usageErrorf("%v (fix CORRELATION_TTL_DAYS)", err)
	}
	return client, store, nil
}
