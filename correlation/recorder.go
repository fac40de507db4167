package correlation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// Timeout bounds one write to the store. Optional; default 1 s, the
	// Python publisher's bound.
	Timeout time.Duration
	// Logger receives the warnings. Optional; default discards.
	Logger *slog.Logger
	// WarnInterval is the least time between two warnings, so an outage
	// logs one line per interval with a count, not one per publish.
	// Optional; default 1 s; negative logs every failure.
	WarnInterval time.Duration
	// MaxInFlight is how many writes may wait on the store at once; beyond
	// it links fail at once rather than pile up goroutines on a hung store.
	// Optional; default 256.
	MaxInFlight int
	// Batching queues links and writes them from one goroutine, many per
	// round trip, so Record never waits for Redis. Optional; default false.
	Batching bool
	// BatchSize is the most links one batched write carries. Optional;
	// default 256. Batching only.
	BatchSize int
	// FlushInterval is the longest a queued link waits for its batch to
	// fill. Optional; default 5 ms. Batching only.
	FlushInterval time.Duration
	// QueueSize bounds the links waiting, and so memory while Redis is
	// away; beyond it links fail. Optional; default 8192. Batching only.
	QueueSize int
}

func (c *RecorderConfig) setDefaults() {
	c.Timeout = cmp.Or(c.Timeout, DefaultWriteTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.WarnInterval = cmp.Or(c.WarnInterval, time.Second)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, 256)
	c.BatchSize = cmp.Or(c.BatchSize, 256)
	c.FlushInterval = cmp.Or(c.FlushInterval, 5*time.Millisecond)
	c.QueueSize = cmp.Or(c.QueueSize, 8192)
}

// Validate reports every problem at once; zero values stand for defaults.
func (c RecorderConfig) Validate() error {
	errs := notNegative(nil, "Timeout", c.Timeout)
	errs = notNegative(errs, "MaxInFlight", c.MaxInFlight)
	errs = notNegative(errs, "BatchSize", c.BatchSize)
	errs = notNegative(errs, "FlushInterval", c.FlushInterval)
	errs = notNegative(errs, "QueueSize", c.QueueSize)
	return invalidConfig("RecorderConfig", errs)
}

func notNegative[T int | time.Duration](errs []error, field string, v T) []error {
	if v < 0 {
		return append(errs, fmt.Errorf("%s %v must not be negative", field, v))
	}
	return errs
}

func invalidConfig(name string, errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid correlation %s: %w", name, err)
	}
	return nil
}

// ErrRecorderBusy is logged for links refused because MaxInFlight writes
// were already waiting or the batching queue was full.
var ErrRecorderBusy = errors.New("correlation recorder is saturated")

// ErrRecorderClosed is logged for links given to a closed Recorder.
var ErrRecorderClosed = errors.New("correlation recorder is closed")

// Recorder writes links to a Writer (usually a Store) for the correlation
// middleware without ever failing or stalling the bus, as the Python
// publisher never lets correlation fail a publish. Record returns no error;
// a link not written is counted (Failed) and logged, rate-limited.
//
// Without batching, Record returns when the links are written or after
// Timeout; links not confirmed by then count as failed (a write completing
// later stays written). With batching, Record only enqueues; each link is
// then written or counted as failed, normally within FlushInterval +
// Timeout, later while earlier batches time out against a stalled Redis
// (batches are written one at a time, in order), and never after Close.
type Recorder struct {
	w   Writer
	cfg RecorderConfig

	recorded, failed, suppressed atomic.Uint64
	lastWarn                     atomic.Int64

	sem      chan struct{}
	inflight sync.WaitGroup

	mu      sync.RWMutex // guards closed and sending on queue
	closed  bool
	queue   chan Link
	flushes chan chan struct{}
	done    chan struct{}
}

// NewRecorder returns a Recorder writing to w.
func NewRecorder(w Writer, cfg RecorderConfig) (*Recorder, error) {
	if w == nil {
		return nil, errors.New("cannot create correlation recorder: writer is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create correlation recorder: %w", err)
	}
	cfg.setDefaults()
	r := &Recorder{w: w, cfg: cfg, sem: make(chan struct{}, cfg.MaxInFlight)}
	if cfg.Batching {
		r.queue = make(chan Link, cfg.QueueSize)
		r.flushes = make(chan chan struct{})
		r.done = make(chan struct{})
		go r.run()
	}
	return r, nil
}

// Record writes links, or counts and logs those it could not write; a link
// failing Link.Validate is refused alone. The context's values reach the
// store, its cancellation does not: a handler that gives up should not leave
// its event unrecorded. The recorder may read a link's Parents and Metadata
// after Record returns (a queued or timed-out write): do not modify them.
func (r *Recorder) Record(ctx context.Context, links ...Link) {
	valid, refused := links, false // links itself until one is refused
	for i, l := range links {
		if err := validate(l); err != nil {
			if !refused {
				valid, refused = slices.Clone(links[:i]), true
			}
			r.fail([]Link{l}, err)
			continue
		}
		if refused {
			valid = append(valid, l)
		}
	}
	if len(valid) == 0 {
		return
	}
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		r.fail(valid, ErrRecorderClosed)
		return
	}
	if r.cfg.Batching {
		defer r.mu.RUnlock() // Close must not close the queue while we send on it
		r.enqueue(valid)     // copies each link into the queue
		return
	}
	r.mu.RUnlock()
	// A slice of its own: a write may outlive Record, and the caller may
	// reuse links. (Cloning here even when valid is a copy already keeps
	// links from escaping, so the caller's variadic slice stays on its stack.)
	r.write(context.WithoutCancel(ctx), slices.Clone(valid))
}

// validate is Link.Validate without its trial encoding of metadata that
// cannot fail to encode, which the middleware's always is: a link per
// consumed message makes that encoding a large share of Record's cost.
func validate(l Link) error {
	for _, v := range l.Metadata {
		switch v.(type) {
		case string, bool, int, int64, nil:
		default:
			return l.Validate()
		}
	}
	return l.checkIDs()
}

// write waits at most Timeout even if the writer ignores its context.
func (r *Recorder) write(ctx context.Context, links []Link) {
	select {
	case r.sem <- struct{}{}:
	default:
		r.fail(links, ErrRecorderBusy)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	result := make(chan error, 1)
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		defer func() { <-r.sem }()
		result <- r.w.Record(ctx, links...)
	}()
	select {
	case err := <-result:
		if err != nil {
			r.fail(links, err)
			return
		}
		r.recorded.Add(uint64(len(links)))
	case <-ctx.Done():
		r.fail(links, fmt.Errorf("no answer within %s: %w", r.cfg.Timeout, ctx.Err()))
	}
}

func (r *Recorder) enqueue(links []Link) {
	for i, l := range links {
		select {
		case r.queue <- l:
		default:
			r.fail(links[i:], fmt.Errorf("%w: %d links already queued", ErrRecorderBusy, r.cfg.QueueSize))
			return
		}
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	batch := make([]Link, 0, r.cfg.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		timer.Stop()
		if len(batch) == 0 {
			return
		}
		r.write(context.Background(), batch)
		// A write that timed out may still hold the old batch, so it is not
		// reused; sizing the next by the last keeps a trickle of links from
		// allocating BatchSize links per flush.
		batch = make([]Link, 0, min(r.cfg.BatchSize, max(8, len(batch))))
	}
	add := func(l Link) {
		batch = append(batch, l)
		if len(batch) == 1 {
			timer.Reset(r.cfg.FlushInterval)
		}
		if len(batch) >= r.cfg.BatchSize {
			flush()
		}
	}
	for {
		select {
		case l, ok := <-r.queue:
			if !ok {
				flush()
				return
			}
			add(l)
		case <-timer.C:
			flush()
		case reply := <-r.flushes:
			// Write what is queued now; links queued later wait their turn.
			for n := len(r.queue); n > 0; n-- {
				add(<-r.queue)
			}
			flush()
			close(reply)
		}
	}
}

// Flush writes every link queued before the call and returns when they are
// written or counted as failed, or when ctx ends. Without batching it only
// waits for the writes in flight.
func (r *Recorder) Flush(ctx context.Context) error {
	if !r.cfg.Batching {
		return r.waitInflight(ctx)
	}
	reply := make(chan struct{})
	select {
	case r.flushes <- reply:
		select {
		case <-reply:
			return nil
		case <-ctx.Done():
		}
	case <-r.done:
		return nil
	case <-ctx.Done():
	}
	return fmt.Errorf("cannot flush correlation links: %w", ctx.Err())
}

// Close stops accepting links, writes those queued, and waits for the
// writes in flight, or until ctx ends. Calling it again waits again.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		if r.queue != nil {
			close(r.queue)
		}
	}
	r.mu.Unlock()
	if r.done != nil {
		select {
		case <-r.done:
		case <-ctx.Done():
			return fmt.Errorf("cannot close correlation recorder: links still queued: %w", ctx.Err())
		}
	}
	return r.waitInflight(ctx)
}

func (r *Recorder) waitInflight(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		r.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot wait for correlation writes in flight: %w", ctx.Err())
	}
}

// Recorded is how many links were written.
func (r *Recorder) Recorded() uint64 { return r.recorded.Load() }

// Failed is how many links were not written: refused as invalid, refused
// while saturated or closed, or whose write failed or timed out.
func (r *Recorder) Failed() uint64 { return r.failed.Load() }

func (r *Recorder) fail(links []Link, err error) {
	total := r.failed.Add(uint64(len(links)))
	if iv := r.cfg.WarnInterval; iv > 0 {
		now := time.Now().UnixNano()
		last := r.lastWarn.Load()
		if last != 0 && now-last < int64(iv) || !r.lastWarn.CompareAndSwap(last, now) {
			r.suppressed.Add(1)
			return
		}
	}
	attrs := []any{
		slog.Int("links", len(links)),
		slog.String("event_id", links[0].Child.String()),
		slog.Any("error", err),
		slog.Uint64("failed_total", total),
	}
	if n := r.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, slog.Uint64("warnings_suppressed", n))
	}
	r.cfg.Logger.Warn("correlation links not recorded", attrs...)
}
