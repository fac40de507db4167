package correlation_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/correlation"
)

// logBuffer collects log lines from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) lines(substr string) int {
	return strings.Count(b.String(), substr)
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

func newRecorder(t testing.TB, w correlation.Writer, cfg correlation.RecorderConfig) *correlation.Recorder {
	t.Helper()
	r, err := correlation.NewRecorder(w, cfg)
	if err != nil {
		t.Fatalf("NewRecorder: %v", err)
	}
	t.Cleanup(func() {
		// Bounded: writes stuck in a blocking writer are released only by
		// a cleanup that runs after this one.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = r.Close(ctx)
	})
	return r
}

func oneLink() correlation.Link {
	return correlation.Link{Child: uuid.New(), Parents: []uuid.UUID{uuid.New()}}
}

// blockingWriter never answers until the test ends, and ignores its
// context: the worst store the recorder has to survive.
type blockingWriter struct {
	release chan struct{}
}

func newBlockingWriter(t testing.TB) *blockingWriter {
	w := &blockingWriter{release: make(chan struct{})}
	t.Cleanup(func() { close(w.release) })
	return w
}

func (w *blockingWriter) Record(context.Context, ...correlation.Link) error {
	<-w.release
	return errors.New("released")
}

func modes(t *testing.T, fn func(t *testing.T, batching bool)) {
	t.Run("direct", func(t *testing.T) { fn(t, false) })
	t.Run("batching", func(t *testing.T) { fn(t, true) })
}

func TestRecorder_records(t *testing.T) {
	modes(t, func(t *testing.T, batching bool) {
		e := newEmbedded(t, correlation.RedisConfig{})
		r := newRecorder(t, e, correlation.RecorderConfig{Batching: batching})
		parent := uuid.New()
		var kids []uuid.UUID
		for range 10 {
			k := uuid.New()
			kids = append(kids, k)
			r.Record(context.Background(), correlation.Link{Child: k, Parents: []uuid.UUID{parent}})
		}
		if err := r.Flush(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if r.Recorded() != 10 || r.Failed() != 0 {
			t.Errorf("Recorded %d Failed %d, want 10 and 0", r.Recorded(), r.Failed())
		}
		got, err := e.Children(testCtx(t), parent)
		byID := func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }
		slices.SortFunc(got, byID)
		slices.SortFunc(kids, byID)
		if err != nil || !slices.Equal(got, kids) {
			t.Errorf("Children = %v, %v; want the 10 recorded %v", got, err, kids)
		}
	})
}

func TestRecorder_redisUnreachableAtStart(t *testing.T) {
	modes(t, func(t *testing.T, batching bool) {
		c, err := correlation.NewUniversalClient(correlation.Settings{URL: "redis://" + closedPort(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		s := newStore(t, c, correlation.RedisConfig{})
		log, logs := newLogger()
		r := newRecorder(t, s, correlation.RecorderConfig{Logger: log, Batching: batching, Timeout: 500 * time.Millisecond})

		start := time.Now()
		r.Record(context.Background(), oneLink())
		if took := time.Since(start); took > 600*time.Millisecond {
			t.Errorf("Record took %s with Redis down, want at most the 500ms timeout", took)
		}
		if err := r.Flush(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if r.Failed() != 1 || r.Recorded() != 0 {
			t.Errorf("Failed %d Recorded %d, want 1 and 0", r.Failed(), r.Recorded())
		}
		if logs.lines("level=WARN msg=\"correlation links not recorded\"") != 1 {
			t.Errorf("want one warning, log:\n%s", logs)
		}
		if !strings.Contains(logs.String(), "failed_total=1") {
			t.Errorf("warning lacks the failure count:\n%s", logs)
		}
	})
}

func TestRecorder_redisLostMidRunAndBack(t *testing.T) {
	modes(t, func(t *testing.T, batching bool) {
		e := newEmbedded(t, correlation.RedisConfig{})
		log, logs := newLogger()
		r := newRecorder(t, e, correlation.RecorderConfig{Logger: log, Batching: batching, Timeout: 500 * time.Millisecond, WarnInterval: -1})
		ctx := context.Background()

		r.Record(ctx, oneLink())
		if err := r.Flush(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		e.Server().Close() // Redis goes away.
		for range 3 {
			start := time.Now()
			r.Record(ctx, oneLink())
			if took := time.Since(start); took > 600*time.Millisecond {
				t.Errorf("Record took %s with Redis gone", took)
			}
		}
		if err := r.Flush(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if r.Recorded() != 1 || r.Failed() != 3 {
			t.Errorf("after the loss: Recorded %d Failed %d, want 1 and 3", r.Recorded(), r.Failed())
		}
		if n := logs.lines("correlation links not recorded"); n < 1 {
			t.Errorf("no warning logged:\n%s", logs)
		}

		if err := e.Server().Restart(); err != nil { // and comes back.
			t.Fatal(err)
		}
		back := oneLink()
		r.Record(ctx, back)
		if err := r.Flush(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if r.Recorded() != 2 {
			t.Errorf("after Redis came back: Recorded %d, want 2 (Failed %d)\n%s", r.Recorded(), r.Failed(), logs)
		}
		if _, err := e.Lookup(testCtx(t), back.Child); err != nil {
			t.Errorf("Lookup after Redis came back: %v", err)
		}
	})
}

func TestRecorder_stalledRedisIsBounded(t *testing.T) {
	c, err := correlation.NewUniversalClient(correlation.Settings{URL: "redis://" + stallingServer(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s := newStore(t, c, correlation.RedisConfig{})
	r := newRecorder(t, s, correlation.RecorderConfig{Timeout: 100 * time.Millisecond})
	start := time.Now()
	r.Record(context.Background(), oneLink())
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("Record took %s on a stalled Redis, want about the 100ms timeout", took)
	}
	if r.Failed() != 1 {
		t.Errorf("Failed = %d, want 1", r.Failed())
	}
}

func TestRecorder_writerIgnoringItsContext(t *testing.T) {
	w := newBlockingWriter(t)
	log, logs := newLogger()
	r, err := correlation.NewRecorder(w, correlation.RecorderConfig{Timeout: 50 * time.Millisecond, MaxInFlight: 2, Logger: log, WarnInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		start := time.Now()
		r.Record(context.Background(), oneLink())
		if took := time.Since(start); took > 250*time.Millisecond {
			t.Errorf("Record took %s on a writer that never returns, want about 50ms", took)
		}
	}
	// Two writes are stuck: the third is refused at once.
	start := time.Now()
	r.Record(context.Background(), oneLink())
	if took := time.Since(start); took > 20*time.Millisecond {
		t.Errorf("Record took %s with MaxInFlight writes stuck, want an immediate refusal", took)
	}
	if r.Failed() != 3 {
		t.Errorf("Failed = %d, want 3", r.Failed())
	}
	if !strings.Contains(logs.String(), "saturated") {
		t.Errorf("the refusal is not logged as saturation:\n%s", logs)
	}
}

func TestRecorder_cancelledCallerStillRecords(t *testing.T) {
	e := newEmbedded(t, correlation.RedisConfig{})
	r := newRecorder(t, e, correlation.RecorderConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l := oneLink()
	r.Record(ctx, l)
	if r.Recorded() != 1 {
		t.Errorf("Recorded = %d (Failed %d), want 1: a handler's cancellation must not drop its link", r.Recorded(), r.Failed())
	}
}

func TestRecorder_invalidLinkRefusedAlone(t *testing.T) {
	modes(t, func(t *testing.T, batching bool) {
		e := newEmbedded(t, correlation.RedisConfig{})
		log, logs := newLogger()
		r := newRecorder(t, e, correlation.RecorderConfig{Batching: batching, Logger: log})
		good := oneLink()
		r.Record(context.Background(), good, correlation.Link{Child: uuid.New()})
		if err := r.Flush(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if r.Recorded() != 1 || r.Failed() != 1 {
			t.Errorf("Recorded %d Failed %d, want 1 and 1", r.Recorded(), r.Failed())
		}
		if _, err := e.Lookup(testCtx(t), good.Child); err != nil {
			t.Errorf("the valid link was not written: %v", err)
		}
		if !strings.Contains(logs.String(), "no parent event ids") {
			t.Errorf("the refusal's reason is not logged:\n%s", logs)
		}
	})
}

func TestRecorder_batchingPipelinesManyLinksPerRoundTrip(t *testing.T) {
	_, c := miniClient(t)
	hook := &roundTrips{}
	c.AddHook(hook)
	s := newStore(t, c, correlation.RedisConfig{})
	r := newRecorder(t, s, correlation.RecorderConfig{Batching: true, BatchSize: 50, FlushInterval: time.Hour})
	for range 500 {
		r.Record(context.Background(), oneLink())
	}
	if err := r.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if r.Recorded() != 500 {
		t.Fatalf("Recorded = %d, want 500 (Failed %d)", r.Recorded(), r.Failed())
	}
	if got := hook.n.Load(); got != 10 {
		t.Errorf("500 links in batches of 50 took %d round trips, want 10", got)
	}
}

func TestRecorder_batchingFlushesWithinTheInterval(t *testing.T) {
	e := newEmbedded(t, correlation.RedisConfig{})
	r := newRecorder(t, e, correlation.RecorderConfig{Batching: true, FlushInterval: 20 * time.Millisecond})
	l := oneLink()
	r.Record(context.Background(), l)
	deadline := time.Now().Add(2 * time.Second)
	for r.Recorded() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling a counter, not standing in for synchronisation
	}
	if r.Recorded() != 1 {
		t.Fatalf("a lone link was not written within the flush interval")
	}
	if _, err := e.Lookup(testCtx(t), l.Child); err != nil {
		t.Error(err)
	}
}

func TestRecorder_batchingQueueFullFailsAtOnce(t *testing.T) {
	w := newBlockingWriter(t)
	r, err := correlation.NewRecorder(w, correlation.RecorderConfig{
		Batching: true, BatchSize: 1, QueueSize: 5, Timeout: time.Hour, FlushInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 100 {
		r.Record(context.Background(), oneLink())
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("100 Records on a full queue took %s, want no waiting", took)
	}
	// At most the queue plus the batch being written are held.
	if f := r.Failed(); f < 100-5-2 {
		t.Errorf("Failed = %d, want at least %d refused", f, 100-5-2)
	}
}

func TestRecorder_closeFlushesAndRefusesLater(t *testing.T) {
	e := newEmbedded(t, correlation.RedisConfig{})
	r, err := correlation.NewRecorder(e, correlation.RecorderConfig{Batching: true, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	links := []correlation.Link{oneLink(), oneLink(), oneLink()}
	r.Record(context.Background(), links...)
	if err := r.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if _, err := e.Lookup(testCtx(t), l.Child); err != nil {
			t.Errorf("queued link not written by Close: %v", err)
		}
	}
	r.Record(context.Background(), oneLink())
	if r.Recorded() != 3 || r.Failed() != 1 {
		t.Errorf("Recorded %d Failed %d, want 3 and 1 (a link after Close fails)", r.Recorded(), r.Failed())
	}
	if err := r.Close(testCtx(t)); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRecorder_warningsAreRateLimited(t *testing.T) {
	w := newBlockingWriter(t)
	log, logs := newLogger()
	r := newRecorder(t, w, correlation.RecorderConfig{Timeout: time.Millisecond, WarnInterval: time.Hour, Logger: log, MaxInFlight: 100})
	for range 20 {
		r.Record(context.Background(), oneLink())
	}
	if n := logs.lines("correlation links not recorded"); n != 1 {
		t.Errorf("%d warnings for 20 failures within WarnInterval, want 1", n)
	}
	if r.Failed() != 20 {
		t.Errorf("Failed = %d, want 20", r.Failed())
	}
}

func TestRecorder_concurrent(t *testing.T) {
	modes(t, func(t *testing.T, batching bool) {
		e := newEmbedded(t, correlation.RedisConfig{})
		r := newRecorder(t, e, correlation.RecorderConfig{Batching: batching})
		parent := uuid.New()
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				r.Record(context.Background(), correlation.Link{Child: uuid.New(), Parents: []uuid.UUID{parent}})
			})
		}
		wg.Wait()
		if err := r.Flush(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if r.Recorded() != 100 || r.Failed() != 0 {
			t.Errorf("Recorded %d Failed %d, want 100 and 0", r.Recorded(), r.Failed())
		}
		if got, _ := e.Children(testCtx(t), parent); len(got) != 100 {
			t.Errorf("Children = %d, want 100", len(got))
		}
	})
}

func TestRecorderConfig_validate(t *testing.T) {
	err := correlation.RecorderConfig{Timeout: -1, MaxInFlight: -1, BatchSize: -1, FlushInterval: -1, QueueSize: -1}.Validate()
	for _, want := range []string{"Timeout", "MaxInFlight", "BatchSize", "FlushInterval", "QueueSize"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %v does not mention %s", err, want)
		}
	}
	if _, err := correlation.NewRecorder(nil, correlation.RecorderConfig{}); err == nil {
		t.Error("NewRecorder(nil) succeeded")
	}
}
