package main

import (
	"context"
	"errors"
	"log/slog"
	"net/url"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
)

// settings reads the bus settings from the environment and .env, and
// remembers their secrets so that no message prints them. A bad setting is
// the user's to fix: exit 1.
func (a *app) settings() (bus.Config, error) {
	cfg, err := bus.LoadConfig(a.environ, a.dotenv)
	if err != nil {
		return bus.Config{}, usageErrorf("%v (fix the environment or .env)", err)
	}
	a.secrets = append(a.secrets, cfg.RedisPassword, cfg.HTTPToken)
	for _, raw := range []string{cfg.RabbitURL, cfg.RedisURL} {
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				a.secrets = append(a.secrets, pw)
			}
		}
	}
	cfg.ConnectTimeout = a.timeout
	cfg.PublishTimeout = a.timeout
	cfg.DrainTimeout = a.timeout
	return cfg, nil
}

// logger builds the logger of the settings, writing to stderr.
func (a *app) logger(cfg bus.Config) (*slog.Logger, error) {
	l, err := bus.NewLogger(a.stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return nil, usageErrorf("%v (check BB_LOG_FORMAT and BB_LOG_LEVEL)", err)
	}
	return l, nil
}

// errNoRabbitURL explains why bb will not run on the embedded transport.
var errNoRabbitURL = errors.New("RABBIT_URL is not set: bb talks to a running RabbitMQ " +
	"(the embedded transport lives inside one process, so it cannot reach a running service); " +
	"set RABBIT_URL=amqp://user:password@host:5672/ in the environment or .env")

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
