package correlation

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// EmbeddedStore is the RedisStore code on an in-process miniredis, so the
// default without Redis and the tests have production's semantics. Data
// lives in memory and is lost on Close.
type EmbeddedStore struct {
	*RedisStore
	srv        *miniredis.Miniredis
	stop, done chan struct{}
	once       sync.Once
}

// embeddedClockTick is how often the embedded server's clock catches up with
// real time: miniredis expires keys only when its clock moves.
const embeddedClockTick = time.Minute

// NewEmbeddedStore starts an in-process Redis on a free loopback port and
// returns a store on it. Close it to stop the server.
func NewEmbeddedStore(cfg RedisConfig) (*EmbeddedStore, error) {
	srv := miniredis.NewMiniRedis()
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("cannot start embedded correlation store: %w", err)
	}
	client := redis.NewClient(&redis.Options{
		Addr:                  srv.Addr(),
		ContextTimeoutEnabled: true,
		// The server is in-process: a dial that takes longer has failed.
		DialTimeout:   200 * time.Millisecond,
		DialerRetries: 1,
		// miniredis speaks RESP2 and RESP3; RESP2 skips the HELLO handshake.
		Protocol: 2,
	})
	store, err := NewRedisStore(client, cfg)
	if err != nil {
		_ = client.Close()
		srv.Close()
		return nil, err
	}
	e := &EmbeddedStore{RedisStore: store, srv: srv, stop: make(chan struct{}), done: make(chan struct{})}
	go e.tickClock()
	return e, nil
}

func (e *EmbeddedStore) tickClock() {
	defer close(e.done)
	t := time.NewTicker(embeddedClockTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			e.srv.FastForward(now.Sub(last))
			last = now
		}
	}
}

// Addr is the embedded server's address, for redis-cli while debugging.
func (e *EmbeddedStore) Addr() string { return e.srv.Addr() }

// Server is the embedded miniredis, for tests: FastForward expires keys,
// Close and Restart simulate losing Redis and getting it back.
func (e *EmbeddedStore) Server() *miniredis.Miniredis { return e.srv }

// Close stops the server and releases the client; calling it again does
// nothing.
func (e *EmbeddedStore) Close() error {
	var err error
	e.once.Do(func() {
		close(e.stop)
		<-e.done
		err = e.RedisStore.client.Close()
		e.srv.Close()
	})
	if err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("cannot close embedded correlation store: %w", err)
	}
	return nil
}
