package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// UniversalClient (standalone, Sentinel or Cluster): Seen is one EXISTS,
// Mark one SET NX. They go through go-redis's auto-pipeliner
// (UniversalClient.AsyncAutoPipeline): every delivery in flight checks its
// key before its handler runs, and go-redis sends the commands of
// concurrent deliveries together, one pipeline per round trip, instead of
// one round trip each over a pool of connections. A caller still waits at
// most until its context ends; the command then completes without it. The
// caller owns the client; closing it stops the pipeliner.
type RedisDedupStore struct {
	client redis.UniversalClient
	ap     *redis.AutoPipeliner // nil when the client cannot pipeline
	prefix string
}

var _ DedupStore = (*RedisDedupStore)(nil)

// NewRedisDedupStore returns a store whose keys start with prefix
// (DefaultDedupKeyPrefix when empty).
func NewRedisDedupStore(client redis.UniversalClient, prefix string) *RedisDedupStore {
	if prefix == "" {
		prefix = DefaultDedupKeyPrefix
	}
	s := &RedisDedupStore{client: client, prefix: prefix}
	if ap, err := client.AsyncAutoPipeline(); err == nil {
		s.ap = ap
	}
	return s
}

// Seen is EXISTS on the key.
func (s *RedisDedupStore) Seen(ctx context.Context, key string) (bool, error) {
	cmd := redis.NewIntCmd(ctx, "exists", s.prefix+key)
	if err := s.process(ctx, cmd); err != nil {
		return false, fmt.Errorf("cannot check dedup key %q: %w", s.prefix+key, err)
	}
	return cmd.Val() > 0, nil
}

// Mark is SET NX with the TTL; the value is when the message was processed.
func (s *RedisDedupStore) Mark(ctx context.Context, key string, ttl time.Duration) error {
	value := time.Now().UTC().Format(time.RFC3339Nano)
	cmd := redis.NewStatusCmd(ctx, "set", s.prefix+key, value, "px", ttl.Milliseconds(), "nx")
	if err := s.process(ctx, cmd); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("cannot mark dedup key %q: %w", s.prefix+key, err)
	}
	return nil
}

// process runs cmd through the pipeliner, waiting for it until ctx ends.
func (s *RedisDedupStore) process(ctx context.Context, cmd redis.Cmder) error {
	if s.ap == nil {
		return s.client.Process(ctx, cmd)
	}
	return s.ap.Submit(ctx, cmd).WaitContext(ctx)
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
	// MarkInBackground queues each mark and returns, so that the delivery
	// is acked while the marks of many deliveries are written together, in
	// one round trip (see markWriter); Store must then be a BatchMarker.
	// A copy reaching this process before its mark is written is still
	// skipped, but a crash in between, or another replica receiving a copy
	// then, runs it again, as without Dedup. Call Flush after the service
	// stopped. Optional; by default each mark is written before the
	// middleware returns.
	MarkInBackground bool
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
		//lint:ignore ST1005 the message starts with the config field's name
		errs = append(errs, errors.New("Store is required (use NewRedisDedupStore)"))
	}
	if c.Service == "" {
		//lint:ignore ST1005 the message starts with the config field's name
		errs = append(errs, errors.New("Service is required: it keeps services that handle the same event apart"))
	}
	if c.Window < 0 {
		//lint:ignore ST1005 the message starts with the config field's name
		errs = append(errs, fmt.Errorf("Window %s is negative", c.Window))
	}
	if c.Window > 0 && c.Window < time.Millisecond {
		//lint:ignore ST1005 the message starts with the config field's name
		errs = append(errs, fmt.Errorf("Window %s is below a millisecond, the store's precision", c.Window))
	}
	if c.Timeout < 0 {
		//lint:ignore ST1005 the message starts with the config field's name
		errs = append(errs, fmt.Errorf("Timeout %s is negative", c.Timeout))
	}
	if _, ok := c.Store.(BatchMarker); c.MarkInBackground && c.Store != nil && !ok {
		errs = append(errs, errors.New("MarkInBackground needs a Store that is a BatchMarker (RedisDedupStore is)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid middleware DedupConfig: %w", err)
	}
	return nil
}

// DedupStats counts what a Dedup did since it was built.
type DedupStats struct {
	// Processed counts messages whose handler succeeded and that were marked,
	// or queued to be with MarkInBackground (or that the store failed to
	// mark: see StoreErrors).
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
// is the key marked for Window, with SET NX, before the middleware returns
// and so before the delivery is acked (unless MarkInBackground, then Flush
// on shutdown). A failed attempt is never marked,
// so its retry is not lost as a duplicate (Watermill's Deduplicator marks
// before the handler runs).
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

	marks *markWriter // nil without MarkInBackground
}

// NewDedup returns the deduplication middleware.
func NewDedup(cfg DedupConfig) (*Dedup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	d := &Dedup{cfg: cfg}
	if store, ok := cfg.Store.(BatchMarker); ok && cfg.MarkInBackground {
		d.marks = &markWriter{d: d, store: store, pending: map[string]int{}}
	}
	return d, nil
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
		seen, err := d.seen(msg.Context(), key)
		if err != nil {
			d.storeFailed("cannot check whether the message was processed; processing it", err,
				slog.String("event_id", msg.UUID), slog.String("handler", handler))
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
		if err := d.mark(msg.Context(), key); err != nil {
			d.storeFailed("cannot mark the message processed; a redelivery would run it again", err,
				slog.String("event_id", msg.UUID), slog.String("handler", handler))
		}
		return out, nil
	}
}

// seen asks the store whether key is marked.
func (d *Dedup) seen(ctx context.Context, key string) (bool, error) {
	if d.marks != nil && d.marks.has(key) {
		return true, nil
	}
	ctx, cancel := d.storeContext(ctx)
	defer cancel()
	return d.cfg.Store.Seen(ctx, key)
}

// mark marks key for Window, or queues the mark (MarkInBackground).
func (d *Dedup) mark(ctx context.Context, key string) error {
	if d.marks != nil {
		d.marks.add(key)
		return nil
	}
	ctx, cancel := d.storeContext(ctx)
	defer cancel()
	return d.cfg.Store.Mark(ctx, key, d.cfg.Window)
}

// storeContext bounds a store call by Timeout. It keeps the message's
// values but not its cancellation: a handler's deadline must not cost the
// mark of a message it handled.
func (d *Dedup) storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timeout)
}

// storeFailed counts a store failure and logs it with attrs, at most once
// per WarnInterval with the number of failures not logged since.
func (d *Dedup) storeFailed(what string, err error, attrs ...any) {
	d.storeErrors.Add(1)
	if d.cfg.WarnInterval > 0 {
		now := time.Now().UnixNano()
		last := d.lastWarn.Load()
		if last != 0 && now-last < int64(d.cfg.WarnInterval) || !d.lastWarn.CompareAndSwap(last, now) {
			d.suppressed.Add(1)
			return
		}
	}
	d.cfg.Logger.Warn("dedup store failed: "+what, append(attrs, slog.String("service", d.cfg.Service),
		slog.String("error", err.Error()), slog.Uint64("not_logged_since", d.suppressed.Swap(0)))...)
}
