package correlation_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/internal/testenv"
)

func testCtx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// newEmbedded is the embedded store, closed when the test ends.
func newEmbedded(t testing.TB, cfg correlation.RedisConfig) *correlation.EmbeddedStore {
	t.Helper()
	e, err := correlation.NewEmbeddedStore(cfg)
	if err != nil {
		t.Fatalf("NewEmbeddedStore: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// miniClient is a client of its own on a fresh miniredis, for tests that
// look at raw keys, count commands or stop the server.
func miniClient(t testing.TB) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	srv := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, Protocol: 2})
	t.Cleanup(func() { _ = c.Close() })
	return srv, c
}

// realClient is a client of the Redis at testenv.Redis; the test is skipped
// (or fails under BB_REQUIRE_SERVICES=1) when it is not running.
func realClient(t testing.TB) *redis.Client {
	t.Helper()
	addr := testenv.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(testCtx(t)).Err(); err != nil {
		if testenv.Required() {
			t.Fatalf("redis at %s does not answer PING: %v", addr, err)
		}
		t.Skipf("redis at %s does not answer PING: %v", addr, err)
	}
	return c
}

// isolatedPrefix returns a key prefix of its own and deletes its keys when
// the test ends, so tests on the shared Redis never see each other's data.
func isolatedPrefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	prefix := "bbtest:" + uuid.NewString() + ":"
	t.Cleanup(func() { deleteMatching(t, c, prefix+"*") })
	return prefix
}

func deleteMatching(t testing.TB, c redis.UniversalClient, pattern string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("cleanup scan %s: %v", pattern, err)
		return
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Logf("cleanup del: %v", err)
		}
	}
}

func newStore(t testing.TB, c redis.UniversalClient, cfg correlation.RedisConfig) *correlation.RedisStore {
	t.Helper()
	s, err := correlation.NewRedisStore(c, cfg)
	if err != nil {
		t.Fatalf("NewRedisStore: %v", err)
	}
	return s
}

// roundTrips counts what a client sends: every pipeline and every single
// command is one round trip to the server. The handshake of a new
// connection (HELLO, CLIENT SETINFO, AUTH, SELECT) is not counted: which
// pool a pipeline's connection comes from is go-redis's business.
type roundTrips struct {
	n    atomic.Int64
	cmds atomic.Int64
}

func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			h.n.Add(1)
			h.cmds.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		counted := 0
		for _, c := range cmds {
			if !handshake(c) {
				counted++
			}
		}
		if counted > 0 {
			h.n.Add(1)
			h.cmds.Add(int64(counted))
		}
		return next(ctx, cmds)
	}
}

func (h *roundTrips) reset() { h.n.Store(0); h.cmds.Store(0) }

// stallingServer accepts connections and never answers: a Redis behind a
// dead network path, the case a timeout exists for.
func stallingServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// closedPort is an address where nothing listens: Redis down at start.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
