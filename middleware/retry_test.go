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

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

var errTransient = errors.New("database unavailable (test)")

func newRetry(t *testing.T, cfg middleware.RetryConfig) *middleware.Retry {
	t.Helper()
	r, err := middleware.NewRetry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fastRetry is a retry config whose waits are a millisecond.
func fastRetry() middleware.RetryConfig {
	return middleware.RetryConfig{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, NoJitter: true}
}

func TestRetryConfig_Validate_joinsEveryProblem(t *testing.T) {
	err := middleware.RetryConfig{
		MaxAttempts: -1, InitialInterval: 2 * time.Second, MaxInterval: time.Second, Multiplier: 0.5,
		Jitter: 2, MaxElapsed: -1, AttemptTimeout: -1, MaxRedeliveries: 2,
	}.Validate()
	if err == nil {
		t.Fatal("Validate accepted a config with eight problems")
	}
	for _, want := range []string{"MaxAttempts", "InitialInterval 2s is above MaxInterval", "Multiplier", "Jitter",
		"MaxElapsed", "AttemptTimeout", "MaxRedeliveries needs a Redeliverer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := (middleware.RetryConfig{}).Validate(); err != nil {
		t.Errorf("the zero config is invalid: %v", err)
	}
}

func TestRetry_Backoff_growsWithinJitterAndCap(t *testing.T) {
	r := newRetry(t, middleware.RetryConfig{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second, Jitter: 0.5})
	for n := 1; n <= 6; n++ {
		base := float64(100*time.Millisecond) * float64(int(1)<<(n-1))
		lo, hi := time.Duration(base*0.5), min(time.Duration(base*1.5), time.Second)
		lo = min(lo, time.Second)
		seen := map[time.Duration]bool{}
		for range 200 {
			d := r.Backoff(n)
			if d < lo || d > hi {
				t.Fatalf("Backoff(%d) = %s, want within [%s, %s]", n, d, lo, hi)
			}
			seen[d] = true
		}
		if n <= 3 && len(seen) < 10 {
			t.Errorf("Backoff(%d) took only %d values in 200 draws: no jitter", n, len(seen))
		}
	}
	exact := newRetry(t, middleware.RetryConfig{InitialInterval: 10 * time.Millisecond, Multiplier: 3, MaxInterval: time.Second, NoJitter: true})
	for n, want := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 30 * time.Millisecond, 3: 90 * time.Millisecond, 5: 810 * time.Millisecond, 6: time.Second, 60: time.Second} {
		if got := exact.Backoff(n); got != want {
			t.Errorf("Backoff(%d) without jitter = %s, want %s", n, got, want)
		}
	}
}

func TestRetry_transientFailureSucceedsOnThirdAttempt(t *testing.T) {
	var delays []time.Duration
	cfg := middleware.RetryConfig{InitialInterval: 2 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second, NoJitter: true,
		OnRetry: func(p middleware.RetryParams) { delays = append(delays, p.Delay) }}
	r := newRetry(t, cfg)
	var attempts []int
	h := r.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		attempts = append(attempts, middleware.AttemptFromCtx(msg.Context()))
		if len(attempts) < 3 {
			return nil, errTransient
		}
		return nil, nil
	})
	if _, err := h(message.NewMessage("m1", nil)); err != nil {
		t.Fatalf("handler chain failed: %v", err)
	}
	if want := []int{1, 2, 3}; !equalInts(attempts, want) {
		t.Errorf("attempts seen by the handler = %v, want %v", attempts, want)
	}
	if want := []time.Duration{2 * time.Millisecond, 4 * time.Millisecond}; len(delays) != 2 || delays[0] != want[0] || delays[1] != want[1] {
		t.Errorf("waits = %v, want %v", delays, want)
	}
	if s := r.Stats(); s.Retried != 2 || s.Exhausted != 0 {
		t.Errorf("stats = %+v, want 2 retried, 0 exhausted", s)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Each attempt has its own context, so the first attempt's timeout does not
// cancel the second; Watermill's Retry around Timeout shares one context.
func TestRetry_freshContextPerAttempt(t *testing.T) {
	cfg := fastRetry()
	cfg.AttemptTimeout = 20 * time.Millisecond
	r := newRetry(t, cfg)
	type key struct{}
	base := context.WithValue(context.Background(), key{}, "kept")
	var ctxs []context.Context
	h := r.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		ctxs = append(ctxs, ctx)
		if ctx.Value(key{}) != "kept" {
			t.Error("the attempt's context lost the message context's values")
		}
		if len(ctxs) == 1 {
			<-ctx.Done() // the slow first attempt runs into its timeout
			return nil, ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the second attempt has no deadline of its own")
		}
		return nil, nil
	})
	msg := message.NewMessage("m1", nil)
	msg.SetContext(base)
	if _, err := h(msg); err != nil {
		t.Fatalf("the second attempt failed: %v (its context was the first one's?)", err)
	}
	if len(ctxs) != 2 || ctxs[0] == ctxs[1] {
		t.Fatalf("want two attempts with two contexts, got %d", len(ctxs))
	}
	if ctxs[1].Err() == nil {
		t.Error("an attempt's context outlives the attempt")
	}
	if msg.Context() != base {
		t.Error("the message's own context was not restored after the attempts")
	}
}

func TestRetry_permanentErrorIsNotRetried(t *testing.T) {
	r := newRetry(t, fastRetry())
	calls := 0
	perm := &envelope.PermanentError{Kind: envelope.KindInvalid, Err: errors.New("amount must be positive")}
	_, err := r.Middleware(func(*message.Message) ([]*message.Message, error) {
		calls++
		return nil, perm
	})(message.NewMessage("m1", nil))
	if calls != 1 {
		t.Errorf("handler ran %d times, want 1", calls)
	}
	var re *middleware.RetryError
	if !errors.As(err, &re) || re.Attempts != 1 || re.Exhausted {
		t.Fatalf("error = %#v, want a *RetryError with 1 attempt, not exhausted", err)
	}
	if !envelope.IsPermanent(err) || errors.Is(err, middleware.ErrRetriesExhausted) {
		t.Errorf("error %v: permanent=%v exhausted=%v, want permanent and not exhausted", err, envelope.IsPermanent(err), errors.Is(err, middleware.ErrRetriesExhausted))
	}
	if re.FirstFailure.IsZero() || re.LastFailure.Before(re.FirstFailure) {
		t.Errorf("failure times %v .. %v", re.FirstFailure, re.LastFailure)
	}
}

func TestRetry_exhaustedWithoutRedeliverer(t *testing.T) {
	r := newRetry(t, fastRetry())
	calls := 0
	_, err := r.Middleware(func(*message.Message) ([]*message.Message, error) {
		calls++
		return nil, errTransient
	})(message.NewMessage("m1", nil))
	if calls != 3 {
		t.Errorf("handler ran %d times, want the default 3", calls)
	}
	var re *middleware.RetryError
	if !errors.As(err, &re) || !errors.Is(err, middleware.ErrRetriesExhausted) || !errors.Is(err, errTransient) {
		t.Fatalf("error = %v, want exhausted, wrapping the handler's", err)
	}
	if re.Attempts != 3 || re.Redeliveries != 0 {
		t.Errorf("attempts %d redeliveries %d, want 3 and 0", re.Attempts, re.Redeliveries)
	}
	if s := r.Stats(); s.Exhausted != 1 || s.Retried != 2 {
		t.Errorf("stats = %+v", s)
	}
}

func TestRetry_panicIsRecoveredAndRetried(t *testing.T) {
	r := newRetry(t, fastRetry())
	calls := 0
	_, err := r.Middleware(func(*message.Message) ([]*message.Message, error) {
		calls++
		if calls < 3 {
			panic("nil map write (test)")
		}
		return nil, nil
	})(message.NewMessage("m1", nil))
	if err != nil || calls != 3 {
		t.Fatalf("err = %v after %d calls, want success on the third", err, calls)
	}
	_, err = r.Middleware(func(*message.Message) ([]*message.Message, error) {
		panic(errors.New("boom"))
	})(message.NewMessage("m2", nil))
	var pe *middleware.PanicError
	if !errors.As(err, &pe) || !errors.Is(err, middleware.ErrRetriesExhausted) {
		t.Fatalf("error = %v, want exhausted with a *PanicError", err)
	}
	if pe.Error() != "panic: boom" || !strings.Contains(string(pe.Stack), "retry_test.go") {
		t.Errorf("panic error %q, stack mentions the handler: %v", pe.Error(), strings.Contains(string(pe.Stack), "retry_test.go"))
	}
	if s := r.Stats(); s.Panics != 5 {
		t.Errorf("panics counted = %d, want 5", s.Panics)
	}
}

func TestRetry_maxElapsedStopsInProcessAttempts(t *testing.T) {
	r := newRetry(t, middleware.RetryConfig{InitialInterval: time.Second, MaxElapsed: 100 * time.Millisecond, NoJitter: true, MaxAttempts: 5})
	calls := 0
	start := time.Now()
	_, err := r.Middleware(func(*message.Message) ([]*message.Message, error) {
		calls++
		return nil, errTransient
	})(message.NewMessage("m1", nil))
	if calls != 1 || !errors.Is(err, middleware.ErrRetriesExhausted) {
		t.Errorf("calls = %d err = %v, want 1 call then exhausted", calls, err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("took %s: it waited although the wait would pass MaxElapsed", el)
	}
}

func TestRetry_endedMessageContextStopsWaiting(t *testing.T) {
	r := newRetry(t, middleware.RetryConfig{InitialInterval: time.Minute, MaxInterval: time.Minute, NoJitter: true, MaxElapsed: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	msg := message.NewMessage("m1", nil)
	msg.SetContext(ctx)
	_, err := r.Middleware(func(*message.Message) ([]*message.Message, error) {
		cancel() // the delivery is given up while the first attempt runs
		return nil, errTransient
	})(msg)
	var re *middleware.RetryError
	if !errors.As(err, &re) || re.Exhausted || envelope.IsPermanent(err) {
		t.Fatalf("error = %v, want a retry error neither exhausted nor permanent (the transport requeues it)", err)
	}
}

// fakeRedeliverer records redeliveries, and fails while failures are left.
type fakeRedeliverer struct {
	mu       sync.Mutex
	got      []middleware.RedeliverParams
	failures int
}

func (f *fakeRedeliverer) Redeliver(_ context.Context, p middleware.RedeliverParams) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return errRelPublish
	}
	f.got = append(f.got, p)
	return nil
}

func (f *fakeRedeliverer) params() []middleware.RedeliverParams {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]middleware.RedeliverParams(nil), f.got...)
}

func TestRetry_redeliversWithAttemptHeadersAndAcks(t *testing.T) {
	red := &fakeRedeliverer{}
	cfg := fastRetry()
	cfg.Redeliverer = red
	r := newRetry(t, cfg)
	var outer string
	rr := relRunRouter(t, []message.HandlerMiddleware{
		func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				out, err := h(msg)
				outer = middleware.Disposition(msg)
				return out, err
			}
		},
		r.Middleware,
	}, relHandler{"billing", func(*message.Message) error { return errTransient }})

	msg := relEventMsg(t, "orders.created", map[string]any{"n": 1})
	msg.Metadata.Set(envelope.MetaRoutingKey, "orders.created")
	msg.Metadata.Set("x-producer", "kept")
	if !rr.send("billing", msg) {
		t.Fatal("a redelivered message was nacked; it must be acked once the broker holds the copy")
	}
	if outer != middleware.DispositionRedelivered {
		t.Errorf("Disposition = %q, want %q", outer, middleware.DispositionRedelivered)
	}
	ps := red.params()
	if len(ps) != 1 {
		t.Fatalf("%d redeliveries, want 1", len(ps))
	}
	p := ps[0]
	if p.Redelivery != 1 || p.Attempts != 3 || p.Handler != "billing" || !errors.Is(p.Err, errTransient) {
		t.Errorf("params = redelivery %d attempts %d handler %q err %v", p.Redelivery, p.Attempts, p.Handler, p.Err)
	}
	cp := p.Message
	if cp.UUID != msg.UUID {
		t.Errorf("copy id %s, want the event id %s", cp.UUID, msg.UUID)
	}
	for k, want := range map[string]string{
		middleware.HeaderAttempts: "3", middleware.HeaderRedeliveries: "1", middleware.HeaderLastError: errTransient.Error(),
		envelope.MetaTargetHandler: "billing", envelope.MetaOriginalRoutingKey: "orders.created", envelope.MetaRawBody: "true",
	} {
		if got := cp.Metadata.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if _, err := envelope.ParseTimestamp(cp.Metadata.Get(middleware.HeaderFirstFailure)); err != nil {
		t.Errorf("first failure header: %v", err)
	}
	if cp.Metadata.Get("x-producer") != "" {
		t.Error("a broker x- header was carried over")
	}
	// Not from a broker: the body is the envelope as the codec writes it.
	env, err := envelope.Decode(cp.Payload)
	if err != nil || env.EventID.String() != msg.UUID {
		t.Errorf("copy body is not the message's envelope: %v", err)
	}
	if s := r.Stats(); s.Redelivered != 1 || s.Exhausted != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestRetry_readsAttemptHeaderBack(t *testing.T) {
	red := &fakeRedeliverer{}
	cfg := fastRetry()
	cfg.Redeliverer, cfg.MaxRedeliveries = red, 3
	r := newRetry(t, cfg)
	var seen []int
	rr := relRunRouter(t, []message.HandlerMiddleware{r.Middleware},
		relHandler{"billing", func(msg *message.Message) error {
			seen = append(seen, middleware.AttemptFromCtx(msg.Context()))
			return errTransient
		}})

	// Back from its second redelivery: attempts 7 to 9, then a third.
	msg := message.NewMessage(relNewID(), []byte(`{}`))
	first := time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC)
	msg.Metadata.Set(middleware.HeaderAttempts, "6")
	msg.Metadata.Set(middleware.HeaderRedeliveries, "2")
	msg.Metadata.Set(middleware.HeaderFirstFailure, envelope.FormatTimestamp(first))
	msg.Metadata.Set(envelope.MetaTargetHandler, "billing")
	if !rr.send("billing", msg) {
		t.Fatal("nacked")
	}
	if !equalInts(seen, []int{7, 8, 9}) {
		t.Errorf("attempts = %v, want [7 8 9]", seen)
	}
	p := red.params()[0]
	if p.Redelivery != 3 || p.Message.Metadata.Get(middleware.HeaderAttempts) != "9" ||
		p.Message.Metadata.Get(middleware.HeaderFirstFailure) != envelope.FormatTimestamp(first) {
		t.Errorf("redelivery %d, headers %v", p.Redelivery, p.Message.Metadata)
	}

	// Back from its last redelivery: exhausted, with the whole history.
	seen = nil
	var got error
	r2 := newRetry(t, cfg)
	_, got = r2.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, errTransient })(func() *message.Message {
		m := message.NewMessage(relNewID(), nil)
		m.Metadata.Set(middleware.HeaderAttempts, "9")
		m.Metadata.Set(middleware.HeaderRedeliveries, "3")
		m.Metadata.Set(middleware.HeaderFirstFailure, envelope.FormatTimestamp(first))
		return m
	}())
	var re *middleware.RetryError
	if !errors.As(got, &re) || !re.Exhausted || re.Attempts != 12 || re.Redeliveries != 3 || !re.FirstFailure.Equal(first) {
		t.Errorf("error = %+v, want exhausted after 12 attempts and 3 redeliveries since %s", re, first)
	}
	if len(red.params()) != 1 {
		t.Error("a message past MaxRedeliveries was redelivered again")
	}
}

// Headers addressed to another handler count that handler's attempts.
func TestRetry_ignoresAnotherHandlersAttempts(t *testing.T) {
	r := newRetry(t, fastRetry())
	var seen []int
	rr := relRunRouter(t, []message.HandlerMiddleware{r.Middleware},
		relHandler{"shipping", func(msg *message.Message) error {
			seen = append(seen, middleware.AttemptFromCtx(msg.Context()))
			return nil
		}})
	msg := message.NewMessage(relNewID(), nil)
	msg.Metadata.Set(middleware.HeaderAttempts, "6")
	msg.Metadata.Set(envelope.MetaTargetHandler, "billing")
	if !rr.send("shipping", msg) || !equalInts(seen, []int{1}) {
		t.Errorf("attempts = %v, want [1]", seen)
	}
}

func TestRetry_failedRedeliveryNacks(t *testing.T) {
	red := &fakeRedeliverer{failures: 1}
	cfg := fastRetry()
	cfg.Redeliverer = red
	r := newRetry(t, cfg)
	var calls atomic.Int32
	var lastErr error
	rr := relRunRouter(t, []message.HandlerMiddleware{
		func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				out, err := h(msg)
				lastErr = err
				return out, err
			}
		}, r.Middleware,
	}, relHandler{"billing", func(*message.Message) error { calls.Add(1); return errTransient }})
	if rr.send("billing", message.NewMessage(relNewID(), nil)) {
		t.Fatal("acked although the broker did not take the redelivery: the message would be lost")
	}
	if envelope.IsPermanent(lastErr) || errors.Is(lastErr, middleware.ErrRetriesExhausted) || !errors.Is(lastErr, errRelPublish) {
		t.Errorf("error = %v, want the redelivery's error, neither permanent nor exhausted", lastErr)
	}
	if calls.Load() != 3 || r.Stats().Redelivered != 0 {
		t.Errorf("calls %d, stats %+v", calls.Load(), r.Stats())
	}
}

// On a bus.Service (embedded transport, whose delay queues behave as
// RabbitMQ's): a failing handler's message comes back through a delay queue
// to that handler alone, with its attempt count, while the service's other
// handler, which succeeded, does not run again.
func TestRetry_redeliveryThroughDelayQueueReachesTheFailedHandlerOnly(t *testing.T) {
	b := relEmbeddedBus(t, "billing")
	svc, err := b.NewService("")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := reliability.Use(context.Background(), b, svc, reliability.Config{
		Retry:            middleware.RetryConfig{MaxAttempts: 2, InitialInterval: time.Millisecond, NoJitter: true},
		RedeliveryDelays: []time.Duration{20 * time.Millisecond, 40 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := rel.DelayQueues.Queues(); len(got) != 2 || got[0] != svc.QueueName()+".retry.20ms" || got[1] != svc.QueueName()+".retry.40ms" {
		t.Errorf("delay queues %v", got)
	}
	var mu sync.Mutex
	var chargeAttempts []int
	notified := &relIDs{}
	if err := svc.HandleMessage("charge", "orders.#", func(msg *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		chargeAttempts = append(chargeAttempts, middleware.AttemptFromCtx(msg.Context()))
		if len(chargeAttempts) < 4 {
			return errTransient
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := svc.HandleMessage("notify", "orders.#", func(msg *message.Message) error {
		notified.add(msg.UUID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)
	msg := relEventMsg(t, "orders.created", map[string]any{"id": "o-1"})
	if err := b.Publisher().Publish("orders.created", msg); err != nil {
		t.Fatal(err)
	}
	relEventually(t, relWait, "the charge to succeed on its fourth attempt", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(chargeAttempts) == 4
	})
	mu.Lock()
	got := append([]int(nil), chargeAttempts...)
	mu.Unlock()
	if !equalInts(got, []int{1, 2, 3, 4}) {
		t.Errorf("charge attempts %v, want 1..4, the last two after a redelivery", got)
	}
	if n := notified.count(msg.UUID); n != 1 {
		t.Errorf("notify ran %d times, want 1: redeliveries are for the failed handler", n)
	}
	s := rel.Stats()
	if s.Retry.Redelivered != 1 || s.Poison.Parked != 0 {
		t.Errorf("stats %+v, want 1 redelivery, nothing parked", s)
	}
	emb := b.EmbeddedBroker()
	if emb.QueueLength(svc.QueueName()) != 0 || emb.QueueLength(rel.PoisonQueue) != 0 {
		t.Error("messages left in the service or poison queue")
	}
}
