package main

import (
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/middleware"
)

// graph is the Redis the processor records links in and deduplicates
// against: the correlation store and the client under it.
type graph struct {
	store  correlation.Store
	costs  *correlation.RedisStore // the same store, for the cost rollup
	client redis.UniversalClient
	close  func()
}

// openCorrelation opens the Redis of the REDIS_* settings on RabbitMQ, and
// an embedded one on the embedded transport, where nothing else is shared
// either. Neither connects here: a Redis that is down delays no start and
// fails no command (the Recorder counts and logs the lost links, Dedup
// fails open); /readyz reports it.
func openCorrelation(settings correlation.Settings, transport string, logger *slog.Logger) (*graph, error) {
	if transport == bus.TransportEmbedded {
		e, err := correlation.NewEmbeddedStore(settings.RedisConfig())
		if err != nil {
			return nil, fmt.Errorf("cannot start the embedded correlation store: %w", err)
		}
		logger.Info("correlation store: embedded Redis", slog.String("addr", e.Addr()))
		// The same in-process Redis serves deduplication, as the real
		// one does on RabbitMQ.
		client := redis.NewClient(&redis.Options{Addr: e.Addr()})
		return &graph{store: e, costs: e.RedisStore, client: client, close: func() { _ = client.Close(); _ = e.Close() }}, nil
	}
	client, err := correlation.NewUniversalClient(settings)
	if err != nil {
		return nil, err
	}
	store, err := correlation.NewRedisStore(client, settings.RedisConfig())
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	logger.Info("correlation store: Redis", slog.Any("redis", settings))
	return &graph{store: store, costs: store, client: client, close: func() { _ = client.Close() }}, nil
}

// linkReader is the store as the runaway guard reads it, or nil for a
// store that cannot read many links at once.
func linkReader(store correlation.Store) middleware.LinkReader {
	if lr, ok := store.(middleware.LinkReader); ok {
		return lr
	}
	return nil
}
