package middleware_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/middleware"
)

// batchMemStore is memDedupStore with MarkMany, which can be held until
// released, fail or panic.
type batchMemStore struct {
	memDedupStore
	gate    chan struct{} // when set, MarkMany waits for it to close
	manyErr error
	panics  bool
}

func (s *batchMemStore) MarkMany(ctx context.Context, keys []string, ttl time.Duration) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.panics {
		panic("store bug (test)")
	}
	if s.manyErr != nil {
		return s.manyErr
	}
	for _, k := range keys {
		if err := s.Mark(ctx, k, ttl); err != nil {
			return err
		}
	}
	return nil
}

func flushDedup(t *testing.T, d *middleware.Dedup) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDedupConfig_markInBackgroundNeedsABatchMarker(t *testing.T) {
	err := middleware.DedupConfig{Store: &memDedupStore{}, Service: "billing", MarkInBackground: true}.Validate()
	if err == nil || !strings.Contains(err.Error(), "BatchMarker") {
		t.Errorf("Validate() = %v, want it to ask for a BatchMarker", err)
	}
}

// The mark is written after the middleware returned (the delivery is acked
// meanwhile); a copy arriving before it is written is still a duplicate,
// and Flush waits for the write.
func TestDedup_marksInTheBackground(t *testing.T) {
	store := &batchMemStore{gate: make(chan struct{})}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", Timeout: 5 * time.Second, MarkInBackground: true})
	runs := 0
	h := d.Middleware(func(*message.Message) ([]*message.Message, error) { runs++; return nil, nil })
	id := relNewID()
	if _, err := h(message.NewMessage(id, nil)); err != nil {
		t.Fatal(err)
	}
	if store.marked(d.Key("", id)) {
		t.Fatal("marked before the gate opened: the mark was on the message's path")
	}
	if _, err := h(message.NewMessage(id, nil)); err != nil || runs != 1 {
		t.Fatalf("a copy arriving before the mark was written ran the handler (%d runs, err %v)", runs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := d.Flush(ctx); err == nil {
		t.Error("Flush returned while a mark was still held")
	}
	cancel()
	close(store.gate)
	flushDedup(t, d)
	if !store.marked(d.Key("", id)) {
		t.Errorf("key %q not marked after Flush", d.Key("", id))
	}
	if s := d.Stats(); s.Processed != 1 || s.Duplicates != 1 || s.StoreErrors != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// Background marks go to Redis many per pipeline, with SET NX semantics.
func TestDedup_backgroundMarksArePipelined(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	trips := &tripCounter{}
	client.AddHook(trips)
	store := middleware.NewRedisDedupStore(client, "")
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", Window: time.Hour, Timeout: 5 * time.Second, MarkInBackground: true})
	h := d.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	const n = 300
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		ids[i] = relNewID()
		wg.Go(func() {
			if _, err := h(message.NewMessage(ids[i], nil)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	flushDedup(t, d)
	for _, id := range ids {
		if !mr.Exists(middleware.DefaultDedupKeyPrefix + d.Key("", id)) {
			t.Fatalf("%s not marked", id)
		}
	}
	if s := d.Stats(); s.Processed != n || s.StoreErrors != 0 {
		t.Errorf("stats %+v", s)
	}
	// One pipeline per mark would be n round trips.
	if p, cmds := trips.markPipelines.Load(), trips.marks.Load(); cmds != n || p > n/2 {
		t.Errorf("%d marks in %d pipelines: the marks were not batched", cmds, p)
	}
}

// RedisDedupStore.MarkMany marks as Mark does: a marked key is no error and
// keeps its first expiry.
func TestRedisDedupStore_markManyIsSetNX(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	store := middleware.NewRedisDedupStore(client, "")
	ctx := context.Background()
	if err := store.Mark(ctx, "old", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := store.MarkMany(ctx, []string{"old", "new"}, time.Hour); err != nil {
		t.Fatalf("MarkMany = %v; want no error (a marked key is not one)", err)
	}
	mr.FastForward(400 * time.Millisecond)
	if seen, _ := store.Seen(ctx, "old"); seen {
		t.Error("MarkMany extended the window of a marked key")
	}
	if seen, _ := store.Seen(ctx, "new"); !seen {
		t.Error("MarkMany did not mark a new key")
	}
	mr.Close()
	if err := store.MarkMany(ctx, []string{"k"}, time.Hour); err == nil {
		t.Error("MarkMany with Redis down returned no error")
	}
}

// A batch that fails, or a store that panics in the background writer,
// costs the batch's marks, counted and logged, not the process.
func TestDedup_backgroundMarkFailureIsCounted(t *testing.T) {
	for _, store := range []*batchMemStore{{manyErr: errors.New("connection refused (test)")}, {panics: true}} {
		logs := &relLogs{}
		d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", Logger: logs.logger(), MarkInBackground: true})
		if _, err := d.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })(message.NewMessage(relNewID(), nil)); err != nil {
			t.Fatal(err)
		}
		flushDedup(t, d)
		if s := d.Stats(); s.StoreErrors != 1 || !logs.contains("level=WARN") || !logs.contains("(test)") {
			t.Errorf("stats %+v, logs:\n%s", s, logs)
		}
	}
}

// BenchmarkDedup_redisInBackground is BenchmarkDedup_redis with
// MarkInBackground: the marks of the deliveries in flight go to Redis
// together, off their path.
func BenchmarkDedup_redisInBackground(b *testing.B) { benchDedupRedis(b, benchParallelism, true) }

// BenchmarkDedup_redis256InBackground is BenchmarkDedup_redis256 with
// MarkInBackground.
func BenchmarkDedup_redis256InBackground(b *testing.B) {
	benchDedupRedis(b, 256/benchProcs(), true)
}

// BenchmarkDedup_redisSerialInBackground is BenchmarkDedup_redisSerial with
// MarkInBackground: one delivery at a time, whose mark is written while the
// next is checked.
func BenchmarkDedup_redisSerialInBackground(b *testing.B) { benchDedupRedis(b, 0, true) }
