package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/correlation"
)

// graph is the correlation store the processor records links in.
type graph struct {
	store correlation.Store
	ping  func(context.Context) error
	close func()
}

// openCorrelation opens the Redis of the REDIS_* settings on RabbitMQ, and
// an embedded store on the embedded transport, where nothing else is
// shared either. Neither connects here: a Redis that is down delays no
// start and fails no command (the Recorder counts and logs the lost links);
// /readyz reports it.
func openCorrelation(cfg bus.Config, transport string, logger *slog.Logger) (*graph, error) {
	if transport == bus.TransportEmbedded {
		e, err := correlation.NewEmbedded(correlation.RedisConfigFromConfig(cfg))
		if err != nil {
			return nil, fmt.Errorf("cannot start the embedded correlation store: %w", err)
		}
		logger.Info("correlation store: embedded Redis", slog.String("addr", e.Addr()))
		return &graph{store: e, ping: func(context.Context) error { return nil }, close: func() { _ = e.Close() }}, nil
	}
	settings := correlation.SettingsFromConfig(cfg)
	client, err := correlation.NewUniversalClient(settings)
	if err != nil {
		return nil, err
	}
	store, err := correlation.NewRedisStore(client, correlation.RedisConfigFromConfig(cfg))
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	logger.Info("correlation store: Redis", slog.Any("redis", settings))
	return &graph{
		store: store,
		ping:  func(ctx context.Context) error { return client.Ping(ctx).Err() },
		close: func() { _ = client.Close() },
	}, nil
}
