package middleware_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/middleware"
)

// silentServer accepts connections and never answers, so that a lookup
// sent to it stays unanswered until the client's read timeout.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// Dedup asks a prefetched lookup whether its answer is in by waiting on an
// ended context, for most messages: while the answer is out, that must
// cost no allocation and return the context's error as is, and a lookup
// that then fails must still say which key it could not check.
func TestRedisDedupStore_startSeenAskedBeforeTheAnswer(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: silentServer(t), ReadTimeout: 300 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	store := middleware.NewRedisDedupStore(client, "bbtest:probe:")
	wait := store.StartSeen(context.Background(), "svc:h:id")

	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if seen, err := wait(ended); seen || err != context.Canceled {
		t.Fatalf("asked before the answer: seen %v, err %v; want false, context.Canceled unwrapped", seen, err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = wait(ended) }); n != 0 {
		t.Errorf("asking before the answer allocates %v times, want 0", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := wait(ctx)
	if err == nil || !strings.Contains(err.Error(), `cannot check dedup key "bbtest:probe:svc:h:id"`) || errors.Is(err, context.Canceled) {
		t.Errorf("the failed lookup returned %v, want the store's error naming the key", err)
	}
}
