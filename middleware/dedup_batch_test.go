package middleware

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// The caller promoted to send a batch as its context ends hands the batch
// to another of its callers, or drops it when they are all gone; either way
// the turn goes on and nobody waits forever. These paths hang on a race
// between the promotion and the context, so the tests stage it: a round trip
// "in flight" (running), callers queued behind it, their contexts canceled,
// then the round trip "ends" (next) while they are on their way out.

func stagedStore(t *testing.T) (*RedisDedupStore, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	s := NewRedisDedupStore(client, "t:")
	s.running = dedupMaxInFlight // every slot busy: calls queue
	return s, mr
}

func (s *RedisDedupStore) waitQueued(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		queued := len(s.queue)
		s.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", queued, n)
		}
	}
}

func (s *RedisDedupStore) waitIdle(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		running, queued := s.running, len(s.queue)
		s.mu.Unlock()
		if running == 0 && queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d round trips running and %d calls queued, want the store idle", running, queued)
		}
	}
}

func TestRedisDedupStore_promotedCallerGoneHandsTheBatchOn(t *testing.T) {
	s, mr := stagedStore(t)
	if err := mr.Set("t:b", "x"); err != nil {
		t.Fatal(err)
	}
	// a has no deadline, so it is promoted; b has one.
	actx, cancelA := context.WithCancel(context.Background())
	bctx, cancelB := context.WithTimeout(context.Background(), time.Minute)
	defer cancelB()
	aErr, bSeen := make(chan error, 1), make(chan bool, 1)
	go func() { aErr <- s.Mark(actx, "a", time.Minute) }()
	s.waitQueued(t, 1)
	go func() {
		seen, err := s.Seen(bctx, "b")
		if err != nil {
			t.Error(err)
		}
		bSeen <- seen
	}()
	s.waitQueued(t, 2)

	s.mu.Lock()
	cancelA()
	time.Sleep(20 * time.Millisecond) // a sees its context end and waits for the lock
	s.next()                          // the round trip in flight ends: a is promoted
	s.mu.Unlock()

	// a most likely left (its command was batched: b sends it); if it saw
	// its promotion first, it sent the batch itself.
	if err := <-aErr; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("a: %v", err)
	}
	if !<-bSeen {
		t.Error("b not seen")
	}
	s.waitIdle(t)
}

func TestRedisDedupStore_batchOfGoneCallersIsDropped(t *testing.T) {
	s, mr := stagedStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { errs <- s.Mark(ctx, "a", time.Minute) }()
	s.waitQueued(t, 1)
	go func() { errs <- s.Mark(ctx, "b", time.Minute) }()
	s.waitQueued(t, 2)

	s.mu.Lock()
	cancel()
	time.Sleep(20 * time.Millisecond) // both wait for the lock, gone
	s.next()
	s.mu.Unlock()

	for range 2 {
		if err := <-errs; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Mark: %v", err)
		}
	}
	s.waitIdle(t)
	if err := s.Mark(context.Background(), "after", time.Minute); err != nil || !mr.Exists("t:after") {
		t.Errorf("the store after the dropped batch: %v", err)
	}
}
