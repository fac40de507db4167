package middleware_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

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

func flushDedup(t *testing.T, d *middleware.Dedup) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
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
	if !rr.send("charge", message.NewMessage(id, nil)) || !rr.send("charge", message.NewMessage(id, nil)) {
		t.Fatal("a delivery was nacked; duplicates must be acked")
	}
	if n := runs.count(id); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	if s := d.Stats(); s.Processed != 1 || s.Duplicates != 1 || s.StoreErrors != 0 {
		t.Errorf("stats = %+v", s)
	}
	flushDedup(t, d)
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
	flushDedup(t, d)
	if s := d.Stats(); s.StoreErrors != 6 || s.Processed != 3 {
		t.Errorf("stats = %+v, want 6 store errors (check and mark of each)", s)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !logs.contains("connection refused (test)") {
		t.Errorf("%d warnings, want 1 (rate-limited) naming the error:\n%s", n, logs)
	}
}

// A hanging store costs at most Timeout per call, and a background mark
// none on the message's path.
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
	flushDedup(t, d)
	if s := d.Stats(); s.StoreErrors != 2 {
		t.Errorf("stats = %+v", s)
	}
}

// dedupHook is a go-redis hook for the tests of RedisDedupStore's batching:
// it counts round trips, can hold the next one until released, so that
// callers queue behind it, and can fail pipelines or single commands.
type dedupHook struct {
	commands, pipelines atomic.Int32
	largest             atomic.Int32                  // commands in the largest pipeline
	hold                atomic.Pointer[chan struct{}] // the next round trip waits for it to close
	held                chan struct{}                 // receives when a round trip is held
	failPipeline        error                         // a pipeline fails with it before it runs
	failKey             string                        // a pipelined command on this key fails with errDedupHookKey
	panicPipeline       bool                          // a pipeline panics
}

var errDedupHookKey = errors.New("this one command failed (test)")

func newDedupHook() *dedupHook { return &dedupHook{held: make(chan struct{}, 1)} }

// holdNext makes the next round trip wait until release is called.
func (h *dedupHook) holdNext() (release func()) {
	ch := make(chan struct{})
	h.hold.Store(&ch)
	return sync.OnceFunc(func() { close(ch) })
}

func (h *dedupHook) wait() {
	if ch := h.hold.Swap(nil); ch != nil {
		h.held <- struct{}{}
		<-*ch
	}
}

func (*dedupHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *dedupHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name != "exists" && name != "set" {
			return next(ctx, cmd)
		}
		h.commands.Add(1)
		h.wait()
		return next(ctx, cmd)
	}
}

func (h *dedupHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if name := cmds[0].Name(); name != "exists" && name != "set" {
			return next(ctx, cmds) // the connection's HELLO
		}
		h.pipelines.Add(1)
		for n := int32(len(cmds)); ; {
			if l := h.largest.Load(); n <= l || h.largest.CompareAndSwap(l, n) {
				break
			}
		}
		h.wait()
		if h.panicPipeline {
			panic("pipeline (test)")
		}
		if h.failPipeline != nil {
			return h.failPipeline
		}
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if h.failKey != "" && cmd.Args()[1] == h.failKey {
				cmd.SetErr(errDedupHookKey)
			}
		}
		return err
	}
}

func (h *dedupHook) trips() int { return int(h.commands.Load() + h.pipelines.Load()) }

// newBatchStore is a RedisDedupStore on miniredis, with the hook on its client.
func newBatchStore(t *testing.T) (*middleware.RedisDedupStore, *miniredis.Miniredis, *redis.Client, *dedupHook) {
	t.Helper()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	hook := newDedupHook()
	client.AddHook(hook)
	return middleware.NewRedisDedupStore(client, "t:"), mr, client, hook
}

// queueBehindHeldCall starts a Seen whose round trip the hook holds, so that
// the calls made until release queue behind it; the Seen's result goes to
// the returned channel.
func queueBehindHeldCall(t *testing.T, store *middleware.RedisDedupStore, hook *dedupHook) (release func(), leader <-chan error) {
	t.Helper()
	release = hook.holdNext()
	t.Cleanup(release)
	done := make(chan error, 1)
	go func() {
		_, err := store.Seen(context.Background(), "leader")
		done <- err
	}()
	select {
	case <-hook.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the first call never reached Redis")
	}
	return release, done
}

// settle gives goroutines just started the time to queue.
func settle() { time.Sleep(50 * time.Millisecond) }

// A lone call is one command, as before batching: no pipeline, no wait.
func TestRedisDedupStore_loneCallIsOneCommand(t *testing.T) {
	store, _, _, hook := newBatchStore(t)
	ctx := context.Background()
	for i := range 5 {
		key := "k" + string(rune('0'+i))
		if seen, err := store.Seen(ctx, key); err != nil || seen {
			t.Fatalf("Seen(%s) = %v, %v", key, seen, err)
		}
		if err := store.Mark(ctx, key, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if c, p := hook.commands.Load(), hook.pipelines.Load(); c != 10 || p != 0 {
		t.Errorf("%d commands and %d pipelines for 10 lone calls, want 10 and 0", c, p)
	}
}

// Calls made while a round trip is in flight go together in one pipeline,
// each with its own key's result; SET NX keeps the first mark's value and TTL.
func TestRedisDedupStore_concurrentCallsArePipelinedWithTheirOwnResults(t *testing.T) {
	store, mr, _, hook := newBatchStore(t)
	ctx := context.Background()
	const n = 600 // more than a pipeline takes
	key := func(i int) string { return "svc:h:" + strconv.Itoa(i) }

	// Even keys are marked, odd keys checked, all at once.
	release, leader := queueBehindHeldCall(t, store, hook)
	errs := make([]error, n)
	seen := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				errs[i] = store.Mark(ctx, key(i), time.Minute)
			} else {
				seen[i], errs[i] = store.Seen(ctx, key(i))
			}
		})
	}
	settle()
	release()
	wg.Wait()
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil || seen[i] {
			t.Fatalf("call %d: seen %v, err %v", i, seen[i], errs[i])
		}
	}
	if trips, largest := hook.trips(), hook.largest.Load(); trips > 5 || largest < n/2 || largest > 512 {
		t.Errorf("%d round trips, the largest pipeline of %d commands, for %d calls queued behind one: want them pipelined by 512 at most",
			trips, largest, n)
	}
	values := map[string]string{}
	for i := 0; i < n; i += 2 {
		k := "t:" + key(i)
		v, err := mr.Get(k)
		if err != nil || mr.TTL(k) != time.Minute {
			t.Fatalf("%s: value %q (%v), TTL %s; want marked for a minute", k, v, err, mr.TTL(k))
		}
		values[k] = v
	}

	// Every key checked, and the even ones marked again, all at once.
	mr.FastForward(time.Second)
	release, leader = queueBehindHeldCall(t, store, hook)
	for i := range n {
		wg.Go(func() { seen[i], errs[i] = store.Seen(ctx, key(i)) })
		if i%2 == 0 {
			wg.Go(func() {
				if err := store.Mark(ctx, key(i), time.Hour); err != nil {
					t.Errorf("second Mark(%s): %v", key(i), err)
				}
			})
		}
	}
	settle()
	release()
	wg.Wait()
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil || seen[i] != (i%2 == 0) {
			t.Errorf("Seen(%s) = %v, %v; want %v", key(i), seen[i], errs[i], i%2 == 0)
		}
	}
	for k, v := range values {
		if got, _ := mr.Get(k); got != v || mr.TTL(k) != time.Minute-time.Second {
			t.Errorf("%s after a second mark: value %q TTL %s, want the first %q and %s", k, got, mr.TTL(k), v, time.Minute-time.Second)
		}
	}
}

// A caller waiting behind a round trip returns as soon as its context ends;
// its command, still queued, is not sent; the store goes on.
func TestRedisDedupStore_waitingCallerReturnsWhenItsContextEnds(t *testing.T) {
	store, mr, _, hook := newBatchStore(t)
	release, leader := queueBehindHeldCall(t, store, hook)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := store.Seen(ctx, "timed-out")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `cannot check dedup key "t:timed-out"`) {
		t.Errorf("Seen past its deadline = %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Seen returned %s after its 30ms deadline", el)
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- store.Mark(ctx, "canceled", time.Minute) }()
	settle()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `cannot mark dedup key "t:canceled"`) {
			t.Errorf("Mark canceled = %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("a canceled Mark still waits for the round trip ahead of it")
	}

	release()
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	if mr.Exists("t:canceled") {
		t.Error("the canceled Mark was sent")
	}
	if err := store.Mark(context.Background(), "after", time.Minute); err != nil || !mr.Exists("t:after") {
		t.Errorf("the store after the callers that gave up: %v", err)
	}
}

// A pipeline that fails fails every caller in it, with its error.
func TestRedisDedupStore_pipelineErrorReachesEveryCallerOfTheBatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fail  func(*redis.Client, *dedupHook)
		want  error
		alone bool // the held call fails too
	}{
		{"client closed", func(c *redis.Client, _ *dedupHook) { _ = c.Close() }, redis.ErrClosed, true},
		{"hook", func(_ *redis.Client, h *dedupHook) { h.failPipeline = errDedupHookKey }, errDedupHookKey, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, _, client, hook := newBatchStore(t)
			release, leader := queueBehindHeldCall(t, store, hook)
			const n = 20
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					if i%2 == 0 {
						_, err := store.Seen(context.Background(), "s"+strconv.Itoa(i))
						errs <- err
					} else {
						errs <- store.Mark(context.Background(), "m"+strconv.Itoa(i), time.Minute)
					}
				})
			}
			settle()
			tc.fail(client, hook)
			release()
			wg.Wait()
			close(errs)
			for err := range errs {
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "cannot ") {
					t.Errorf("a caller of the batch got %v, want %v", err, tc.want)
				}
			}
			if err := <-leader; tc.alone != (err != nil) {
				t.Errorf("the held lone call: %v", err)
			}
			if p := hook.pipelines.Load(); p != 1 {
				t.Errorf("%d pipelines, want the %d callers in one", p, n)
			}
		})
	}
}

// A command's own error goes to its caller only; a SET NX on a marked key
// is no error at all.
func TestRedisDedupStore_commandErrorReachesItsCallerOnly(t *testing.T) {
	store, mr, _, hook := newBatchStore(t)
	hook.failKey = "t:bad"
	if err := mr.Set("t:marked", "before"); err != nil {
		t.Fatal(err)
	}
	release, leader := queueBehindHeldCall(t, store, hook)
	var badErr, markedErr, goodErr error
	var goodSeen bool
	var wg sync.WaitGroup
	wg.Go(func() { _, badErr = store.Seen(context.Background(), "bad") })
	wg.Go(func() { markedErr = store.Mark(context.Background(), "marked", time.Minute) })
	wg.Go(func() { goodSeen, goodErr = store.Seen(context.Background(), "marked") })
	settle()
	release()
	wg.Wait()
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	if !errors.Is(badErr, errDedupHookKey) || !strings.Contains(badErr.Error(), `cannot check dedup key "t:bad"`) {
		t.Errorf("Seen(bad) = %v", badErr)
	}
	if markedErr != nil {
		t.Errorf("Mark of a marked key = %v, want nil (SET NX)", markedErr)
	}
	if goodErr != nil || !goodSeen {
		t.Errorf("Seen(marked) = %v, %v in the batch of a failed command", goodSeen, goodErr)
	}
	if hook.pipelines.Load() != 1 {
		t.Errorf("%d pipelines, want 1", hook.pipelines.Load())
	}
}

// Many callers, some giving up, on a slow Redis: every call returns, with
// the right answer or its context's error, and the store stays usable.
func TestRedisDedupStore_callersGivingUpUnderLoad(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	client.AddHook(slowHook{})
	store := middleware.NewRedisDedupStore(client, "")
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 30 {
				key := strconv.Itoa(g) + ":" + strconv.Itoa(i)
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+(g*i)%4)*time.Millisecond)
				if i%3 == 0 {
					cancel() // some give up before they start
				}
				markErr := store.Mark(ctx, key, time.Minute)
				cancel()
				if markErr != nil && !errors.Is(markErr, context.DeadlineExceeded) && !errors.Is(markErr, context.Canceled) {
					t.Errorf("Mark(%s): %v", key, markErr)
				}
				seen, err := store.Seen(context.Background(), key)
				if err != nil || markErr == nil && !seen {
					t.Errorf("Seen(%s) = %v, %v after Mark returned %v", key, seen, err, markErr)
				}
			}
		})
	}
	wg.Wait()
	if err := store.Mark(context.Background(), "last", time.Minute); err != nil || !mr.Exists(middleware.DefaultDedupKeyPrefix+"last") {
		t.Errorf("the store after the load: %v", err)
	}
}

// slowHook makes each round trip take a while.
type slowHook struct{}

func (slowHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (slowHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		time.Sleep(time.Millisecond)
		return next(ctx, cmd)
	}
}

func (slowHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		time.Sleep(time.Millisecond)
		return next(ctx, cmds)
	}
}

// A client that panics in a round trip panics its leader (as a lone command
// would), fails the rest of the batch, and leaves the store usable.
func TestRedisDedupStore_panicInAPipelineFailsItsBatch(t *testing.T) {
	store, _, _, hook := newBatchStore(t)
	release, leader := queueBehindHeldCall(t, store, hook)
	hook.panicPipeline = true
	const n = 10
	var panics atomic.Int32
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer func() {
				if recover() != nil {
					panics.Add(1)
				}
			}()
			_, err := store.Seen(context.Background(), strconv.Itoa(i))
			errs <- err
		})
	}
	settle()
	release()
	wg.Wait()
	close(errs)
	if err := <-leader; err != nil {
		t.Fatal(err)
	}
	if p := panics.Load(); p != 1 {
		t.Errorf("%d callers panicked, want the leader", p)
	}
	for err := range errs {
		if err == nil || !strings.Contains(err.Error(), "panicked") {
			t.Errorf("a caller of the batch got %v", err)
		}
	}
	if _, err := store.Seen(context.Background(), "after"); err != nil {
		t.Errorf("the store after the panic: %v", err)
	}
}

// gatedDedupStore holds every Mark until released, to see when marks are
// written relative to the message.
type gatedDedupStore struct {
	memDedupStore
	gate chan struct{}
}

func (s *gatedDedupStore) Mark(ctx context.Context, key string, ttl time.Duration) error {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.memDedupStore.Mark(ctx, key, ttl)
}

// By default the mark is written after the middleware returned (the
// delivery is acked meanwhile); a copy arriving before it is written is
// still a duplicate, and Flush waits for the write.
func TestDedup_marksInTheBackground(t *testing.T) {
	store := &gatedDedupStore{gate: make(chan struct{})}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", Timeout: 5 * time.Second})
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
}

// SyncMark writes the mark before the middleware returns.
func TestDedup_syncMarkMarksBeforeReturning(t *testing.T) {
	store := &memDedupStore{}
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", SyncMark: true})
	id := relNewID()
	if _, err := d.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })(message.NewMessage(id, nil)); err != nil {
		t.Fatal(err)
	}
	if !store.marked(d.Key("", id)) {
		t.Error("SyncMark: not marked when the middleware returned")
	}
}

// Background marks go to Redis many per pipeline, through MarkMany, with
// SET NX semantics.
func TestDedup_backgroundMarksArePipelined(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	hook := newDedupHook()
	client.AddHook(hook)
	store := middleware.NewRedisDedupStore(client, "")
	d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", Window: time.Hour, Timeout: 5 * time.Second})
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
	// 300 checks and 300 marks; the marks alone would be 300 round trips.
	if trips := hook.trips(); trips >= 2*n-n/2 {
		t.Errorf("%d round trips for %d checks and %d marks: the marks were not batched", trips, n, n)
	}
	errs, err := store.MarkMany(context.Background(), []string{d.Key("", ids[0]), "billing::new"}, time.Hour)
	if err != nil || len(errs) != 2 || errs[0] != nil || errs[1] != nil {
		t.Fatalf("MarkMany = %v, %v; want no errors (a marked key is not one)", errs, err)
	}
}

type panickyDedupStore struct{ memDedupStore }

func (*panickyDedupStore) Mark(context.Context, string, time.Duration) error { panic("store bug") }

// A store that panics in the background writer costs the mark, counted
// and logged, not the process.
func TestDedup_backgroundMarkPanicIsCounted(t *testing.T) {
	logs := &relLogs{}
	d := newDedup(t, middleware.DedupConfig{Store: &panickyDedupStore{}, Service: "billing", Logger: logs.logger()})
	if _, err := d.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })(message.NewMessage(relNewID(), nil)); err != nil {
		t.Fatal(err)
	}
	flushDedup(t, d)
	if s := d.Stats(); s.StoreErrors != 1 || !logs.contains("store bug") {
		t.Errorf("stats %+v, logs:\n%s", s, logs)
	}
}
