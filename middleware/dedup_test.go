package middleware_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
)

func TestDedupConfig_Validate_joinsEveryProblem(t *testing.T) {
	err := middleware.DedupConfig{Window: time.Microsecond, Timeout: -1}.Validate()
	for _, want := range []string{"Store is required", "Service is required", "below a millisecond", "Timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

// dedupStoreContract is what every DedupStore must do. advance moves the
// store's clock (miniredis) or waits (a real Redis).
func dedupStoreContract(t *testing.T, store middleware.DedupStore, advance func(time.Duration)) {
	ctx := context.Background()
	key := "svc:handler:" + uuid.NewString()
	if seen, err := store.Seen(ctx, key); err != nil || seen {
		t.Fatalf("Seen(new key) = %v, %v; want false", seen, err)
	}
	if err := store.Mark(ctx, key, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if seen, err := store.Seen(ctx, key); err != nil || !seen {
		t.Fatalf("Seen(marked key) = %v, %v; want true", seen, err)
	}
	// SET NX: marking again neither fails nor extends the window.
	if err := store.Mark(ctx, key, time.Hour); err != nil {
		t.Fatalf("Mark of a marked key: %v", err)
	}
	advance(400 * time.Millisecond)
	if seen, err := store.Seen(ctx, key); err != nil || seen {
		t.Errorf("Seen after the window = %v, %v; want false (the second mark extended it?)", seen, err)
	}
}

func TestRedisDedupStore_contract_miniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	store := middleware.NewRedisDedupStore(client, "")
	dedupStoreContract(t, store, mr.FastForward)
	if err := store.Mark(context.Background(), "svc:h:id", time.Minute); err != nil {
		t.Fatal(err)
	}
	if keys := mr.Keys(); len(keys) == 0 || !strings.HasPrefix(keys[0], middleware.DefaultDedupKeyPrefix) {
		t.Errorf("keys %v do not start with %q", keys, middleware.DefaultDedupKeyPrefix)
	}
}

func TestRedisDedupStore_contract_redis(t *testing.T) {
	addr := testenv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = client.Close() })
	store := middleware.NewRedisDedupStore(client, "bloodbank:dedup:test:"+uuid.NewString()+":")
	dedupStoreContract(t, store, time.Sleep) // waiting out a real TTL
}

// memDedupStore is a DedupStore in memory that can be made to fail or hang.
type memDedupStore struct {
	mu    sync.Mutex
	keys  map[string]bool
	err   error
	hang  bool
	calls atomic.Int32
}

func (s *memDedupStore) Seen(ctx context.Context, key string) (bool, error) {
	s.calls.Add(1)
	if err := s.fault(ctx); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key], nil
}

func (s *memDedupStore) Mark(ctx context.Context, key string, _ time.Duration) error {
	s.calls.Add(1)
	if err := s.fault(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	s.keys[key] = true
	return nil
}

func (s *memDedupStore) fault(ctx context.Context) error {
	if s.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.err
}

func (s *memDedupStore) marked(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

func newDedup(t *testing.T, cfg middleware.DedupConfig) *middleware.Dedup {
	t.Helper()
	d, err := middleware.NewDedup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDedup_sameEventTwiceRunsTheHandlerOnce(t *testing.T) {
	logs := &relLogs{}
	store := &memDedupStore{}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", Logger: logs.logger()})
	runs := &relIDs{}
	rr := relRunRouter(t, []message.HandlerMiddleware{d.Middleware},
		relHandler{"charge", func(msg *message.Message) error { runs.add(msg.UUID); return nil }})
	id := relNewID()
	first := rr.send("charge", message.NewMessage(id, nil))
	second := rr.send("charge", message.NewMessage(id, nil))
	if !first || !second {
		t.Fatalf("acked %t, %t; duplicates must be acked too", first, second)
	}
	if n := runs.count(id); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	if s := d.Stats(); s.Processed != 1 || s.Duplicates != 1 || s.StoreErrors != 0 {
		t.Errorf("stats = %+v", s)
	}
	if !store.marked(d.Key("charge", id)) || d.Key("charge", id) != "billing:charge:"+id {
		t.Errorf("key %q not marked", d.Key("charge", id))
	}
	if !logs.contains("level=DEBUG msg=\"duplicate message skipped\"") {
		t.Errorf("no debug line for the duplicate in:\n%s", logs)
	}
}

// A failed attempt is not marked, so its redelivery runs; Watermill's
// Deduplicator would have dropped it.
func TestDedup_failedAttemptIsRetriedNotDeduplicated(t *testing.T) {
	store := &memDedupStore{}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing"})
	calls := 0
	rr := relRunRouter(t, []message.HandlerMiddleware{d.Middleware},
		relHandler{"charge", func(*message.Message) error {
			calls++
			if calls == 1 {
				return errTransient
			}
			return nil
		}})
	id := relNewID()
	if rr.send("charge", message.NewMessage(id, nil)) {
		t.Fatal("the failed attempt was acked")
	}
	if store.marked(d.Key("charge", id)) {
		t.Fatal("a failed attempt was marked processed")
	}
	if !rr.send("charge", message.NewMessage(id, nil)) || calls != 2 {
		t.Fatalf("redelivery: handler ran %d times in all, want 2", calls)
	}
	if !rr.send("charge", message.NewMessage(id, nil)) || calls != 2 {
		t.Errorf("after success the duplicate ran the handler (%d calls)", calls)
	}
}

// Each handler of a service is its own consumer: A's success does not make
// B's delivery of the same event a duplicate.
func TestDedup_keyedByHandler(t *testing.T) {
	store := &memDedupStore{}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing"})
	a, b := &relIDs{}, &relIDs{}
	rr := relRunRouter(t, []message.HandlerMiddleware{d.Middleware},
		relHandler{"a", func(msg *message.Message) error { a.add(msg.UUID); return nil }},
		relHandler{"b", func(msg *message.Message) error { b.add(msg.UUID); return nil }})
	id := relNewID()
	rr.send("a", message.NewMessage(id, nil))
	rr.send("b", message.NewMessage(id, nil))
	rr.send("b", message.NewMessage(id, nil))
	if a.count(id) != 1 || b.count(id) != 1 {
		t.Errorf("a ran %d, b ran %d, want 1 and 1", a.count(id), b.count(id))
	}
}

// A message Retry sent back through the broker returned nil without
// succeeding: Dedup must not mark it, or its redelivery would be dropped.
func TestDedup_doesNotMarkARedeliveredMessage(t *testing.T) {
	store := &memDedupStore{}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing"})
	cfg := fastRetry()
	cfg.Redeliverer = &fakeRedeliverer{}
	r := newRetry(t, cfg)
	fail := atomic.Bool{}
	fail.Store(true)
	calls := atomic.Int32{}
	rr := relRunRouter(t, []message.HandlerMiddleware{d.Middleware, r.Middleware},
		relHandler{"charge", func(*message.Message) error {
			calls.Add(1)
			if fail.Load() {
				return errTransient
			}
			return nil
		}})
	id := relNewID()
	if !rr.send("charge", message.NewMessage(id, nil)) {
		t.Fatal("nacked")
	}
	if store.marked(d.Key("charge", id)) || d.Stats().Processed != 0 {
		t.Fatal("a redelivered message was marked processed")
	}
	fail.Store(false)
	if !rr.send("charge", message.NewMessage(id, nil)) || calls.Load() != 4 {
		t.Errorf("the redelivery did not run the handler (%d calls, want 3 + 1)", calls.Load())
	}
}

// Redis away: messages are processed, the failures counted and logged.
func TestDedup_failsOpenWhenTheStoreFails(t *testing.T) {
	logs := &relLogs{}
	store := &memDedupStore{err: errors.New("connection refused (test)")}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", Logger: logs.logger(), WarnInterval: time.Hour})
	runs := &relIDs{}
	rr := relRunRouter(t, []message.HandlerMiddleware{d.Middleware},
		relHandler{"charge", func(msg *message.Message) error { runs.add(msg.UUID); return nil }})
	for range 3 {
		if !rr.send("charge", message.NewMessage(relNewID(), nil)) {
			t.Fatal("a message was nacked because the dedup store failed")
		}
	}
	if runs.distinct() != 3 {
		t.Errorf("%d messages processed, want 3", runs.distinct())
	}
	if s := d.Stats(); s.StoreErrors != 6 || s.Processed != 3 {
		t.Errorf("stats = %+v, want 6 store errors (check and mark of each)", s)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !logs.contains("connection refused (test)") {
		t.Errorf("%d warnings, want 1 (rate-limited) naming the error:\n%s", n, logs)
	}
}

// A hanging store costs at most Timeout per call.
func TestDedup_slowStoreIsBoundedByTimeout(t *testing.T) {
	store := &memDedupStore{hang: true}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", Timeout: 30 * time.Millisecond})
	ran := false
	start := time.Now()
	_, err := d.Middleware(func(*message.Message) ([]*message.Message, error) { ran = true; return nil, nil })(message.NewMessage(relNewID(), nil))
	if err != nil || !ran {
		t.Fatalf("err %v, ran %v: want the message processed", err, ran)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("took %s with a 30ms timeout", el)
	}
	if s := d.Stats(); s.StoreErrors != 2 {
		t.Errorf("stats = %+v", s)
	}
}

// The mark is written before the middleware returns, so before the
// delivery is acked, even when the handler's own context has ended.
func TestDedup_marksBeforeReturning(t *testing.T) {
	store := &memDedupStore{}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing"})
	id := relNewID()
	msg := message.NewMessage(id, nil)
	ctx, cancel := context.WithCancel(context.Background())
	msg.SetContext(ctx)
	if _, err := d.Middleware(func(*message.Message) ([]*message.Message, error) { cancel(); return nil, nil })(msg); err != nil {
		t.Fatal(err)
	}
	if !store.marked(d.Key("", id)) {
		t.Error("not marked when the middleware returned")
	}
	if s := d.Stats(); s.Processed != 1 || s.StoreErrors != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// A message that an inner middleware did not hand to its handler (here an
// inner Dedup that found it a duplicate) returns nil without being handled:
// the outer Dedup must not mark it.
func TestDedup_marksOnlyHandledMessages(t *testing.T) {
	store := &memDedupStore{}
	outer := newDedup(t, middleware.DedupConfig{Store: store, Service: "outer"})
	inner := newDedup(t, middleware.DedupConfig{Store: store, Service: "inner"})
	id := relNewID()
	if err := store.Mark(context.Background(), inner.Key("", id), time.Minute); err != nil {
		t.Fatal(err)
	}
	ran := false
	msg := message.NewMessage(id, nil)
	if _, err := outer.Middleware(inner.Middleware(func(*message.Message) ([]*message.Message, error) { ran = true; return nil, nil }))(msg); err != nil {
		t.Fatal(err)
	}
	if ran || middleware.Disposition(msg) != middleware.DispositionDuplicate {
		t.Fatalf("ran %v, disposition %q: want the inner Dedup to skip it", ran, middleware.Disposition(msg))
	}
	if store.marked(outer.Key("", id)) || outer.Stats().Processed != 0 {
		t.Error("the outer Dedup marked a message its handler never ran for")
	}
}

// Warnings about a failing store come at most once per WarnInterval, the
// next one saying how many were not logged.
func TestDedup_storeWarningsAreThrottled(t *testing.T) {
	logs := &relLogs{}
	store := &memDedupStore{err: errors.New("connection refused (test)")}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", Logger: logs.logger(), WarnInterval: 100 * time.Millisecond})
	h := d.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	for range 5 {
		if _, err := h(message.NewMessage(relNewID(), nil)); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings for 10 failures within the interval, want 1:\n%s", n, logs)
	}
	time.Sleep(150 * time.Millisecond) // past the interval: the next failure is logged
	if _, err := h(message.NewMessage(relNewID(), nil)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 || !logs.contains("not_logged_since=9") {
		t.Errorf("%d warnings, want 2, the second counting the 9 not logged:\n%s", n, logs)
	}
	if s := d.Stats(); s.StoreErrors != 12 {
		t.Errorf("stats = %+v, want 12 store errors", s)
	}
}

// slowRedisHook delays every EXISTS and SET past the caller's deadline.
// It sleeps rather than waiting for the command's context to end: a
// pipelined command runs under its pipeline's context, not its caller's.
type slowRedisHook struct{}

func (slowRedisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (slowRedisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "exists" || name == "set" {
			time.Sleep(time.Second)
			return context.DeadlineExceeded
		}
		return next(ctx, cmd)
	}
}

func (slowRedisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// With Redis down or too slow, RedisDedupStore's errors reach Dedup, which
// processes the message anyway within its Timeout.
func TestDedup_failsOpenOnRedis(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(*miniredis.Miniredis, *redis.Client)
	}{
		{"down", func(mr *miniredis.Miniredis, _ *redis.Client) { mr.Close() }},
		{"slow", func(_ *miniredis.Miniredis, c *redis.Client) { c.AddHook(slowRedisHook{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mr := miniredis.RunT(t)
			client := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
			t.Cleanup(func() { _ = client.Close() })
			tc.breakIt(mr, client)
			d := newDedup(t, middleware.DedupConfig{Store: middleware.NewRedisDedupStore(client, ""), Service: "billing", Timeout: 50 * time.Millisecond})
			ran := 0
			start := time.Now()
			h := d.Middleware(func(*message.Message) ([]*message.Message, error) { ran++; return nil, nil })
			for range 2 {
				if _, err := h(message.NewMessage(relNewID(), nil)); err != nil {
					t.Fatal(err)
				}
			}
			if el := time.Since(start); ran != 2 || el > 2*time.Second {
				t.Errorf("%d of 2 messages processed in %s", ran, el)
			}
			if s := d.Stats(); s.StoreErrors != 4 || s.Processed != 2 {
				t.Errorf("stats = %+v, want 4 store errors", s)
			}
		})
	}
}

// A replay (the x-bb-replay header) runs an event its first run handled,
// once per replay: a second delivery of the same replay is a duplicate,
// and another replay runs it again.
func TestDedup_replayRunsOncePerReplay(t *testing.T) {
	store := &memDedupStore{}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing"})
	runs := &relIDs{}
	rr := relRunRouter(t, []message.HandlerMiddleware{d.Middleware},
		relHandler{"charge", func(msg *message.Message) error { runs.add(msg.UUID); return nil }})
	id := relNewID()
	replayed := func(replay string) *message.Message {
		msg := message.NewMessage(id, nil)
		msg.Metadata.Set(envelope.MetaReplay, replay)
		return msg
	}
	rr.send("charge", message.NewMessage(id, nil))
	rr.send("charge", replayed("r1"))
	rr.send("charge", replayed("r1"))
	rr.send("charge", replayed("r2"))
	if n := runs.count(id); n != 3 {
		t.Errorf("handler ran %d times, want 3: the first run, replay r1 once, replay r2 once", n)
	}
	if s := d.Stats(); s.Processed != 3 || s.Duplicates != 1 {
		t.Errorf("stats = %+v, want 3 processed and 1 duplicate", s)
	}
	if key := d.Key("charge", id) + ":replay:r1"; !store.marked(key) {
		t.Errorf("key %q not marked", key)
	}
}
