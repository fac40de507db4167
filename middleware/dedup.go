package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// DefaultDedupKeyPrefix comes before every key RedisDedupStore writes:
// "bloodbank:dedup:{service}:{handler}:{event id}".
const DefaultDedupKeyPrefix = "bloodbank:dedup:"

// DedupStore remembers which messages a handler has processed, for a time
// window. Implementations must be safe for concurrent use.
type DedupStore interface {
	// Seen reports whether key was marked and has not expired.
	Seen(ctx context.Context, key string) (bool, error)
	// Mark records key for ttl, unless it is already recorded (SET NX):
	// a second mark keeps the first one's expiry.
	Mark(ctx context.Context, key string, ttl time.Duration) error
}

// RedisDedupStore is the DedupStore on Redis through a go-redis
// UniversalClient (standalone, Sentinel or Cluster). The caller owns the
// client; the store has nothing to start or close.
//
// It pipelines concurrent calls. Dedup makes two calls per delivery (Seen
// before the handler, Mark after it), and as a synchronous round trip each
// through the client's connection pool they were the largest single cost of
// consuming: 31 µs of client CPU per message with 16 deliveries in flight,
// 48 µs with 256 (pool contention). So a call that finds a round trip in
// flight does not start another: it queues. When the round trip returns,
// everything queued (up to dedupMaxBatch commands, EXISTS and SET NX mixed)
// goes as one pipeline, sent by one of the waiting callers, the leader, while
// the others wait for their results; the next batch is another caller's.
// The store starts no goroutine and adds no timer or wait: a lone call is
// one command as before, and batches grow with the load.
//
// Each caller keeps its context. A waiting caller whose context ends returns
// its error at once (a command still queued is then not sent). The leader is
// the caller of the batch with the latest deadline, and the pipeline runs
// until that deadline, whatever becomes of the leader's context otherwise.
// A command's own error reaches its caller only; a pipeline's (the
// connection, a closed client) reaches every caller of the batch. On Cluster
// go-redis splits the pipeline by slot.
type RedisDedupStore struct {
	client redis.UniversalClient
	prefix string

	mu      sync.Mutex
	running int          // round trips in flight, at most dedupMaxInFlight
	queue   []*dedupCall // calls waiting for a round trip; empty while running < dedupMaxInFlight
}

const (
	// dedupMaxInFlight is how many round trips the store runs at once. One
	// makes the largest batches and cost the least CPU per call in
	// BenchmarkDedup_redis and BenchmarkDedup_redis256; 2 and 4 cost more.
	dedupMaxInFlight = 1
	// dedupMaxBatch bounds the commands of one pipeline.
	dedupMaxBatch = 512
)

var _ DedupStore = (*RedisDedupStore)(nil)

// NewRedisDedupStore returns a store whose keys start with prefix
// (DefaultDedupKeyPrefix when empty).
func NewRedisDedupStore(client redis.UniversalClient, prefix string) *RedisDedupStore {
	if prefix == "" {
		prefix = DefaultDedupKeyPrefix
	}
	return &RedisDedupStore{client: client, prefix: prefix}
}

// Seen is EXISTS on the key.
func (s *RedisDedupStore) Seen(ctx context.Context, key string) (bool, error) {
	n, err := s.do(dedupCall{ctx: ctx, key: s.prefix + key})
	if err != nil {
		return false, fmt.Errorf("cannot check dedup key %q: %w", s.prefix+key, err)
	}
	return n > 0, nil
}

// Mark is SET NX with the TTL; the value is when the message was processed.
func (s *RedisDedupStore) Mark(ctx context.Context, key string, ttl time.Duration) error {
	_, err := s.do(dedupCall{ctx: ctx, key: s.prefix + key, mark: true, value: time.Now().UTC().Format(time.RFC3339Nano), ttl: ttl})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("cannot mark dedup key %q: %w", s.prefix+key, err)
	}
	return nil
}

// dedupCall is one Seen (EXISTS) or Mark (SET NX) on its way to Redis.
type dedupCall struct {
	ctx   context.Context
	key   string
	mark  bool
	value string        // Mark's
	ttl   time.Duration // Mark's

	// The result, written by whoever runs the call's round trip before it
	// closes wake (or returns, when that is the caller itself).
	n   int64
	err error

	// Under RedisDedupStore.mu:
	state dedupCallState
	wake  chan struct{} // closed when the result is in or the call must lead
	batch []*dedupCall  // what a leading call must send, itself included
}

type dedupCallState uint8

const (
	dedupQueued  dedupCallState = iota // in the store's queue
	dedupBatched                       // in a batch another caller is sending
	dedupLeading                       // must send its batch
	dedupDone                          // its result is in
	dedupGone                          // its caller returned before the result
)

// do sends the call, alone or in a batch, and returns its command's result
// (EXISTS's count) and error.
func (s *RedisDedupStore) do(call dedupCall) (int64, error) {
	s.mu.Lock()
	if s.running < dedupMaxInFlight {
		// Nothing queued: one command, as if there were no batching.
		s.running++
		s.mu.Unlock()
		s.send(&call, nil)
		return call.n, call.err
	}
	c := new(dedupCall) // on the heap only when it queues
	*c = call
	c.wake = make(chan struct{})
	s.queue = append(s.queue, c)
	s.mu.Unlock()

	select {
	case <-c.wake:
	case <-c.ctx.Done():
		s.mu.Lock()
		switch c.state {
		case dedupQueued, dedupBatched:
			c.state = dedupGone
			s.mu.Unlock()
			return 0, c.ctx.Err()
		case dedupLeading:
			// Promoted as the context ended: another caller of the batch
			// sends it, or, if they are all gone too, nobody does.
			c.state = dedupGone
			if !s.promote(c.batch) {
				s.next()
			}
			s.mu.Unlock()
			return 0, c.ctx.Err()
		}
		s.mu.Unlock() // dedupDone: the result is in
	}
	// Closing wake published state and batch; nobody else changes them now.
	if c.state == dedupLeading {
		s.send(c, c.batch)
	}
	return c.n, c.err
}

// send runs the round trip of batch (nil: leader alone), led by leader,
// delivers its results to the other callers and passes the turn on, even if
// the client panics: the store must not stay stuck.
func (s *RedisDedupStore) send(leader *dedupCall, batch []*dedupCall) {
	sent := false
	defer func() {
		s.mu.Lock()
		for _, c := range batch {
			if !sent {
				c.err = errDedupPanic
			}
			if c != leader && c.state == dedupBatched {
				c.state = dedupDone
				close(c.wake)
			}
		}
		leader.state = dedupDone
		s.next()
		s.mu.Unlock()
	}()
	if len(batch) <= 1 {
		leader.n, leader.err = s.command(leader)
	} else {
		s.pipeline(leader, batch)
	}
	sent = true
}

var errDedupPanic = errors.New("the Redis client panicked in the round trip of this call's batch")

// command sends c as one command, with its context.
func (s *RedisDedupStore) command(c *dedupCall) (int64, error) {
	if c.mark {
		return 0, s.client.SetArgs(c.ctx, c.key, c.value, redis.SetArgs{Mode: "NX", TTL: c.ttl}).Err()
	}
	return s.client.Exists(c.ctx, c.key).Result()
}

// pipeline sends batch as one pipeline. It runs until the leader's deadline,
// the latest of the batch, and is not cut short when the leader's context is
// canceled: the others are waiting for it.
func (s *RedisDedupStore) pipeline(leader *dedupCall, batch []*dedupCall) {
	ctx := context.WithoutCancel(leader.ctx)
	if deadline, ok := leader.ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	pipe := s.client.Pipeline()
	cmds := make([]redis.Cmder, len(batch))
	for i, c := range batch {
		if c.mark {
			cmds[i] = pipe.SetArgs(ctx, c.key, c.value, redis.SetArgs{Mode: "NX", TTL: c.ttl})
		} else {
			cmds[i] = pipe.Exists(ctx, c.key)
		}
	}
	_, err := pipe.Exec(ctx)
	// go-redis gives a failed pipeline's error to each command, but not when
	// a hook fails it before it runs: then no command has an error, and
	// EXISTS would read 0 and SET NX succeed.
	var reply redis.Error
	stamp := err != nil && !errors.As(err, &reply)
	for _, cmd := range cmds {
		stamp = stamp && cmd.Err() == nil
	}
	for i, c := range batch {
		switch cmd := cmds[i].(type) {
		case *redis.IntCmd:
			c.n, c.err = cmd.Result()
		default:
			c.err = cmd.Err()
		}
		if stamp {
			c.err = err
		}
	}
}

// next passes the turn of a round trip that ended to the next batch, or
// frees it when nothing is queued. Called under s.mu.
func (s *RedisDedupStore) next() {
	for q := s.queue; len(q) > 0; q = s.queue {
		batch := make([]*dedupCall, 0, min(len(q), dedupMaxBatch))
		i := 0
		for ; i < len(q) && len(batch) < dedupMaxBatch; i++ {
			if c := q[i]; c.state == dedupQueued {
				c.state = dedupBatched
				batch = append(batch, c)
			}
		}
		clear(q[:i])
		if i == len(q) {
			s.queue = q[:0] // the array serves the next ones
		} else {
			s.queue = q[i:]
		}
		if s.promote(batch) {
			return
		}
	}
	s.running--
}

// promote makes the caller of batch with the latest deadline, among those
// still waiting, send it; false when none is left. Called under s.mu.
func (s *RedisDedupStore) promote(batch []*dedupCall) bool {
	var leader *dedupCall
	var latest time.Time
	for _, c := range batch {
		if c.state != dedupBatched {
			continue
		}
		deadline, ok := c.ctx.Deadline()
		if !ok {
			leader = c
			break
		}
		if leader == nil || deadline.After(latest) {
			leader, latest = c, deadline
		}
	}
	if leader == nil {
		return false
	}
	leader.state, leader.batch = dedupLeading, batch
	close(leader.wake)
	return true
}

// DedupConfig configures Dedup.
type DedupConfig struct {
	// Store remembers processed messages. Required; NewRedisDedupStore in
	// production, so that every replica of the service shares it.
	Store DedupStore
	// Service names the service in the keys: "{service}:{handler}:{event id}".
	// Required: two services handling the same event must not skip each other.
	Service string
	// Window is how long a processed message is remembered; a duplicate
	// arriving later is processed again. Optional; default 24h.
	Window time.Duration
	// Timeout bounds each call to the Store. Optional; default 250ms.
	// A store that fails or is slower fails open: the message is
	// processed, and the miss counted and logged.
	Timeout time.Duration
	// WarnInterval is the least time between two warnings about the store:
	// when Redis is down every message fails to check, and one line per
	// interval with a count says as much as thousands. The first failure is
	// always logged. Optional; default 1s; negative logs every failure.
	WarnInterval time.Duration
	// Logger receives a debug line per duplicate and the warnings. Optional;
	// default logs nothing.
	Logger *slog.Logger
	// SyncMark marks each message before the middleware returns, so before
	// the delivery is acked. By default marks are written in the background,
	// in batches, while the delivery is acked: the handler's path then holds
	// one Redis round trip (the check) instead of two, which was worth about
	// a tenth of a consuming service's throughput. What the default gives up
	// is a window of about a millisecond: if the process dies after the ack
	// and before its mark is written, a copy of the event published again
	// later runs again, as it would without Dedup; and another replica
	// receiving a copy within that millisecond runs it too. (Copies reaching
	// this process meanwhile are skipped: it remembers the marks it has not
	// written yet.) Call Flush before the process exits.
	SyncMark bool
}

func (c *DedupConfig) setDefaults() {
	if c.Window == 0 {
		c.Window = 24 * time.Hour
	}
	if c.Timeout == 0 {
		c.Timeout = 250 * time.Millisecond
	}
	if c.WarnInterval == 0 {
		c.WarnInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem of the configuration at once.
func (c DedupConfig) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required (use NewRedisDedupStore)"))
	}
	if c.Service == "" {
		errs = append(errs, errors.New("Service is required: it keeps services that handle the same event apart"))
	}
	if c.Window < 0 {
		errs = append(errs, fmt.Errorf("Window %s is negative", c.Window))
	}
	if c.Window > 0 && c.Window < time.Millisecond {
		errs = append(errs, fmt.Errorf("Window %s is below a millisecond, the store's precision", c.Window))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("Timeout %s is negative", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid middleware DedupConfig: %w", err)
	}
	return nil
}

// DedupStats counts what a Dedup did since it was built.
type DedupStats struct {
	// Processed counts messages whose handler succeeded and that were marked,
	// or are queued to be (or that the store failed to mark: see StoreErrors).
	Processed uint64
	// Duplicates counts messages skipped because their handler had already
	// succeeded for the same event id.
	Duplicates uint64
	// StoreErrors counts store calls that failed or timed out (fail open).
	StoreErrors uint64
}

// Dedup is the idempotent-consumer middleware: install its Middleware method
// inside Poison and outside Retry. Build it with NewDedup. It is safe for
// concurrent use.
//
// A message is identified by service, handler and event id (msg.UUID):
// each handler of a service is its own consumer, so a retry addressed to
// handler B is not taken for a duplicate because handler A succeeded. Before
// the handler, Dedup asks the store whether the key was marked; if so the
// message is acked without running the handler, counted, and logged at
// debug. Only after the handler chain succeeded, and really handled the
// message (Disposition is DispositionHandled, not redelivered or parked),
// is the key marked for Window, with SET NX: a failed attempt is never
// marked, so its retry is not lost as a duplicate (Watermill's
// Deduplicator marks before the handler runs). Marks are written in the
// background, many per round trip, while the delivery is acked (see
// SyncMark); Flush waits for them.
//
// Dedup fails open: when the store fails or takes longer than Timeout,
// the message is processed anyway, the failure counted (StoreErrors) and
// logged as a warning. Two deliveries of one event handled at the same time
// by two consumers may both run: deduplication narrows at-least-once
// delivery, it does not make it exactly-once.
type Dedup struct {
	cfg DedupConfig

	processed, duplicates, storeErrors atomic.Uint64
	lastWarn                           atomic.Int64
	suppressed                         atomic.Uint64

	// Marks waiting to be written (unless SyncMark). A writer goroutine runs
	// while there are some and ends when there are none, so there is
	// nothing to stop.
	marksMu sync.Mutex
	marks   []pendingMark
	queued  map[string]struct{} // keys of marks not yet written
	writing bool
	pending int           // queued or being written
	idle    chan struct{} // closed when pending drops to 0
}

type pendingMark struct{ key, eventID, handler string }

// dedupMarkBatch bounds the marks of one write.
const dedupMarkBatch = 512

// BatchMarker is a DedupStore that can mark many keys in one round trip;
// Dedup writes its background marks through it when the store has it.
// RedisDedupStore does, with a pipeline.
type BatchMarker interface {
	// MarkMany marks each key as Mark does and returns one error per key
	// (nil when marked or already marked), or a single error for all.
	MarkMany(ctx context.Context, keys []string, ttl time.Duration) ([]error, error)
}

// NewDedup returns the deduplication middleware.
func NewDedup(cfg DedupConfig) (*Dedup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Dedup{cfg: cfg}, nil
}

// Stats returns the counters.
func (d *Dedup) Stats() DedupStats {
	return DedupStats{Processed: d.processed.Load(), Duplicates: d.duplicates.Load(), StoreErrors: d.storeErrors.Load()}
}

// Key is the store key of a message for a handler:
// "{service}:{handler}:{event id}".
func (d *Dedup) Key(handler, eventID string) string {
	return d.cfg.Service + ":" + handler + ":" + eventID
}

// Middleware implements message.HandlerMiddleware.
func (d *Dedup) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if msg.UUID == "" {
			return h(msg)
		}
		handler := message.HandlerNameFromCtx(msg.Context())
		key := d.Key(handler, msg.UUID)
		seen, err := d.queuedMark(key), error(nil)
		if !seen {
			seen, err = d.seen(msg.Context(), key)
		}
		if err != nil {
			d.storeFailed("cannot check whether the message was processed; processing it", msg.UUID, handler, err)
		} else if seen {
			d.duplicates.Add(1)
			d.cfg.Logger.Debug("duplicate message skipped", slog.String("event_id", msg.UUID),
				slog.String("handler", handler), slog.String("service", d.cfg.Service))
			setDisposition(msg, DispositionDuplicate)
			return nil, nil
		}
		out, err := h(msg)
		if err != nil || Disposition(msg) != DispositionHandled {
			return out, err
		}
		d.processed.Add(1)
		if !d.cfg.SyncMark {
			d.markLater(pendingMark{key: key, eventID: msg.UUID, handler: handler})
			return out, nil
		}
		if err := d.mark(msg.Context(), key); err != nil {
			d.storeFailed("cannot mark the message processed; a redelivery would run it again", msg.UUID, handler, err)
		}
		return out, nil
	}
}

func (d *Dedup) seen(ctx context.Context, key string) (bool, error) {
	// The message's values, not its cancellation: the bound is Timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timeout)
	defer cancel()
	return d.cfg.Store.Seen(ctx, key)
}

func (d *Dedup) mark(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timeout)
	defer cancel()
	return d.cfg.Store.Mark(ctx, key, d.cfg.Window)
}

// storeFailed counts a store failure and logs it, at most once per
// WarnInterval with the number of failures not logged since.
func (d *Dedup) storeFailed(what, eventID, handler string, err error) {
	d.storeErrors.Add(1)
	if d.cfg.WarnInterval > 0 {
		now := time.Now().UnixNano()
		last := d.lastWarn.Load()
		if last != 0 && now-last < int64(d.cfg.WarnInterval) || !d.lastWarn.CompareAndSwap(last, now) {
			d.suppressed.Add(1)
			return
		}
	}
	d.cfg.Logger.Warn("dedup store failed: "+what, slog.String("event_id", eventID), slog.String("handler", handler),
		slog.String("service", d.cfg.Service), slog.String("error", err.Error()), slog.Uint64("not_logged_since", d.suppressed.Swap(0)))
}

// markLater queues a mark for the background writer, starting it if it is
// not running.
func (d *Dedup) markLater(m pendingMark) {
	d.marksMu.Lock()
	d.marks = append(d.marks, m)
	if d.queued == nil {
		d.queued = map[string]struct{}{}
	}
	d.queued[m.key] = struct{}{}
	if d.pending == 0 {
		d.idle = make(chan struct{})
	}
	d.pending++
	start := !d.writing
	d.writing = true
	d.marksMu.Unlock()
	if start {
		go d.writeMarks()
	}
}

// queuedMark reports whether key waits to be marked: this process handled
// the message and its mark is not written yet. A copy delivered meanwhile
// (the same event published twice, back to back) is a duplicate that the
// store cannot see yet.
func (d *Dedup) queuedMark(key string) bool {
	if d.cfg.SyncMark {
		return false
	}
	d.marksMu.Lock()
	_, ok := d.queued[key]
	d.marksMu.Unlock()
	return ok
}

// writeMarks writes queued marks in batches until none is left.
func (d *Dedup) writeMarks() {
	var batch []pendingMark
	for {
		d.marksMu.Lock()
		n := min(len(d.marks), dedupMarkBatch)
		if n == 0 {
			d.writing = false
			d.marksMu.Unlock()
			return
		}
		batch = append(batch[:0], d.marks[:n]...)
		rest := copy(d.marks, d.marks[n:])
		clear(d.marks[rest:])
		d.marks = d.marks[:rest]
		d.marksMu.Unlock()

		d.writeBatch(batch)

		d.marksMu.Lock()
		for _, m := range batch {
			delete(d.queued, m.key)
		}
		d.pending -= len(batch)
		if d.pending == 0 {
			close(d.idle)
		}
		d.marksMu.Unlock()
	}
}

func (d *Dedup) writeBatch(batch []pendingMark) {
	const what = "cannot mark the message processed; a redelivery would run it again"
	defer func() {
		// The writer is not a handler's goroutine: a store that panics
		// must cost the marks of this batch, not the process.
		if r := recover(); r != nil {
			d.storeFailed(what, batch[0].eventID, batch[0].handler, fmt.Errorf("the store panicked writing %d marks: %v", len(batch), r))
		}
	}()
	bm, ok := d.cfg.Store.(BatchMarker)
	if !ok || len(batch) == 1 {
		// One call per mark, each with its own Timeout, as on the path.
		for _, m := range batch {
			if err := d.mark(context.Background(), m.key); err != nil {
				d.storeFailed(what, m.eventID, m.handler, err)
			}
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout)
	defer cancel()
	keys := make([]string, len(batch))
	for i, m := range batch {
		keys[i] = m.key
	}
	errs, err := bm.MarkMany(ctx, keys, d.cfg.Window)
	for i, m := range batch {
		switch {
		case err != nil:
			d.storeFailed(what, m.eventID, m.handler, err)
		case i < len(errs) && errs[i] != nil:
			d.storeFailed(what, m.eventID, m.handler, errs[i])
		}
	}
}

// Flush waits until every mark queued before it returns is written (or has
// failed and been counted), or ctx ends. Call it on shutdown, after the
// service stopped, so that the last messages handled are remembered.
// Without background marks (SyncMark) it returns at once.
func (d *Dedup) Flush(ctx context.Context) error {
	d.marksMu.Lock()
	if d.pending == 0 {
		d.marksMu.Unlock()
		return nil
	}
	idle := d.idle
	d.marksMu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot flush dedup marks: %w", ctx.Err())
	}
}

// MarkMany implements BatchMarker: SET NX with the TTL for every key, in
// one pipeline.
func (s *RedisDedupStore) MarkMany(ctx context.Context, keys []string, ttl time.Duration) ([]error, error) {
	value := time.Now().UTC().Format(time.RFC3339Nano)
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StatusCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.SetArgs(ctx, s.prefix+k, value, redis.SetArgs{Mode: "NX", TTL: ttl})
	}
	_, err := pipe.Exec(ctx)
	errs := make([]error, len(keys))
	var reply redis.Error
	failed := false
	for i, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
			errs[i] = fmt.Errorf("cannot mark dedup key %q: %w", s.prefix+keys[i], e)
			failed = true
		}
	}
	if err != nil && !errors.Is(err, redis.Nil) && !errors.As(err, &reply) && !failed {
		// A pipeline failed before any command ran (a hook, a closed
		// client): no command carries the error.
		return nil, fmt.Errorf("cannot mark %d dedup keys: %w", len(keys), err)
	}
	return errs, nil
}
