package main

import (
	"context"
	"errors"
	"log/slog"
	"net/url"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/cmd/internal/telemetry"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/internal/settings"
)

// config is every setting bb reads: those of the packages it drives.
type config struct {
	Bus       bus.Config
	Redis     correlation.Settings
	HTTP      gateway.Settings
	Telemetry telemetry.Settings
}

// settings reads the settings from the environment and .env, and
// remembers their secrets so that no message prints them. A bad setting is
// the user's to fix: exit 1. --timeout bounds every wait on the broker.
func (a *app) settings() (config, error) {
	var c config
	if err := settings.Load(a.environ, a.dotenv, &c.Bus, &c.Redis, &c.HTTP, &c.Telemetry); err != nil {
		return config{}, usageErrorf("%v (fix the environment or .env)", err)
	}
	a.secrets = append(a.secrets, c.Redis.Password, c.HTTP.Token)
	for _, raw := range []string{c.Bus.RabbitURL, c.Redis.URL} {
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

// logger builds the logger of the settings, writing to stderr.
func (a *app) logger(c config) (*slog.Logger, error) {
	l, err := telemetry.NewLogger(a.stderr, c.Telemetry)
	if err != nil {
		return nil, usageErrorf("%v (fix the environment or .env)", err)
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
