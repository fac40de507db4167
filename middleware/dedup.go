package middleware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// DefaultDedupKeyPrefix comes before every key RedisDedupStore writes:
// "bloodbank:dedup:{service}:{handler}:{event id}".
const DefaultDedupKeyPrefix = "bloodbank:dedup:"

// DedupStore remembers which messages a handler has processed, for a time
// window. Implementations must be safe for concurrent use.
type DedupStore interface {
	// Seen reports whether key was marked and has not expired.
	Seen(ctx context.Context, key string) (bool, error)
	// Mark records key for ttl unless it is recorded (SET NX semantics).
	Mark(ctx context.Context, key string, ttl time.Duration) error
}

// RedisDedupStore is the DedupStore on a go-redis UniversalClient
// (standalone, Sentinel or Cluster): Seen is one EXISTS, Mark one SET NX.
// Both go through go-redis's auto-pipeliner, so that the checks of
// concurrent deliveries share a round trip. The caller owns the client.
type RedisDedupStore struct {
	client redis.UniversalClient
	ap     *redis.AutoPipeliner // nil when the client cannot pipeline
	prefix string
}

var _ DedupStore = (*RedisDedupStore)(nil)

// NewRedisDedupStore returns a store whose keys start with prefix
// (DefaultDedupKeyPrefix when empty).
func NewRedisDedupStore(client redis.UniversalClient, prefix string) *RedisDedupStore {
	s := &RedisDedupStore{client: client, prefix: cmp.Or(prefix, DefaultDedupKeyPrefix)}
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

func (s *RedisDedupStore) process(ctx context.Context, cmd redis.Cmder) error {
	if s.ap == nil {
		return s.client.Process(ctx, cmd)
	}
	return s.ap.Submit(ctx, cmd).WaitContext(ctx)
}

// DedupConfig configures Dedup.
type DedupConfig struct {
	// Store remembers processed messages, shared by every replica.
	// Required; NewRedisDedupStore in production.
	Store DedupStore
	// Service names the service in the keys, so that two services handling
	// one event do not skip each other. Required.
	Service string
	// Window is how long a processed message is remembered; a duplicate
	// arriving later is processed again. Optional; default 24h.
	Window time.Duration
	// Timeout bounds each call to the Store, which fails open: the message
	// is processed. Optional; default 250ms.
	Timeout time.Duration
	// WarnInterval is the least time between two warnings about the store,
	// which fails for every message when Redis is down. Optional; default 1s;
	// negative logs every failure.
	WarnInterval time.Duration
	// Logger receives duplicates (debug) and warnings. Optional.
	Logger *slog.Logger
	// MarkInBackground acks the delivery before its mark is written, with the
	// marks of other deliveries; Store must be a BatchMarker. A crash before
	// the write runs the message again. Call Flush after the service stopped.
	// Optional; by default each mark is written before the middleware returns.
	MarkInBackground bool
}

func (c *DedupConfig) setDefaults() {
	c.Window = cmp.Or(c.Window, 24*time.Hour)
	c.Timeout = cmp.Or(c.Timeout, 250*time.Millisecond)
	c.WarnInterval = cmp.Or(c.WarnInterval, time.Second)
	c.Logger = cmp.Or(c.Logger, discardLogger)
}

// Validate reports every problem of the configuration at once.
func (c DedupConfig) Validate() error {
	var p problems
	p.add(c.Store == nil, "Store is required (use NewRedisDedupStore)")
	p.add(c.Service == "", "Service is required: it keeps services that handle the same event apart")
	p.add(c.Window < 0, "Window %s is negative", c.Window)
	p.add(c.Window > 0 && c.Window < time.Millisecond, "Window %s is below a millisecond, the store's precision", c.Window)
	p.add(c.Timeout < 0, "Timeout %s is negative", c.Timeout)
	_, batch := c.Store.(BatchMarker)
	p.add(c.MarkInBackground && c.Store != nil && !batch, "MarkInBackground needs a Store that is a BatchMarker (RedisDedupStore is)")
	return p.err("DedupConfig")
}

// DedupStats counts what a Dedup did since it was built.
type DedupStats struct {
	Processed   uint64 // messages handled and marked (or queued to be)
	Duplicates  uint64 // messages skipped as already handled
	StoreErrors uint64 // store calls that failed or timed out (fail open)
}

// Dedup is the idempotent-consumer middleware: install its Middleware method
// inside Poison and outside Retry. Build it with NewDedup. It is safe for
// concurrent use. A message whose Key the store has is acked unhandled. The
// key is marked only once the chain handled the message, so a failed
// attempt's retry is not lost as a duplicate (unlike Watermill's
// Deduplicator). Dedup fails open when the store fails or exceeds Timeout.
// Copies of one event that one Dedup sees at once are handled one after
// the other, so the later ones find the first's mark; two replicas
// handling one event at once may both run it. Prefetch starts the store
// lookup before the message reaches the middleware.
type Dedup struct {
	cfg DedupConfig

	processed, duplicates, storeErrors atomic.Uint64
	lastWarn                           atomic.Int64
	suppressed                         atomic.Uint64

	marks    *markWriter // nil without MarkInBackground
	inflight inflight
}

// NewDedup returns the deduplication middleware.
func NewDedup(cfg DedupConfig) (*Dedup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	d := &Dedup{cfg: cfg, inflight: inflight{window: cfg.Window}}
	if store, ok := cfg.Store.(BatchMarker); ok && cfg.MarkInBackground {
		d.marks = &markWriter{d: d, store: store, pending: map[string]int{}}
	}
	return d, nil
}

// Stats returns the counters.
func (d *Dedup) Stats() DedupStats {
	return DedupStats{Processed: d.processed.Load(), Duplicates: d.duplicates.Load(), StoreErrors: d.storeErrors.Load()}
}

// Key is the store key of a message for a handler, "{service}:{handler}:{id}",
// so that a retry for handler B is not a duplicate of handler A's success.
// A message with the envelope.MetaReplay header is keyed
// "{service}:{handler}:{id}:replay:{replay id}": each replay runs once.
func (d *Dedup) Key(handler, eventID string) string {
	return d.key(handler, eventID, "")
}

// key is Key with the replay suffix when replay is set, built in one
// concatenation.
func (d *Dedup) key(handler, eventID, replay string) string {
	if replay == "" {
		return d.cfg.Service + ":" + handler + ":" + eventID
	}
	return d.cfg.Service + ":" + handler + ":" + eventID + ":replay:" + replay
}

// Middleware implements message.HandlerMiddleware.
func (d *Dedup) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if msg.UUID == "" {
			return h(msg)
		}
		ctx := msg.Context()
		handler := message.HandlerNameFromCtx(ctx)
		replay := msg.Metadata.Get(envelope.MetaReplay)
		// The lookup Prefetch started has the key: no need to build it twice.
		ahead := d.prefetched(ctx, handler, msg.UUID, replay)
		var key string
		if ahead != nil {
			key = ahead.key
		} else {
			key = d.key(handler, msg.UUID, replay)
		}
		release, recent := d.inflight.acquire(key)
		ok := false
		if release != nil {
			defer func() { release(ok) }() // also when the handler panics
		}
		var seen bool
		var err error
		if !recent {
			seen, err = d.seen(ctx, key, ahead)
		}
		if err != nil {
			d.storeFailed("cannot check whether the message was processed; processing it", err,
				slog.String("event_id", msg.UUID), slog.String("handler", handler))
		} else if seen || recent {
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
		ok = true
		return out, nil
	}
}

// seen asks the store about key, or waits for the answer to the lookup
// Prefetch started (ahead, nil when it did not).
func (d *Dedup) seen(ctx context.Context, key string, ahead *lookahead) (bool, error) {
	if d.marks != nil && d.marks.has(key) {
		return true, nil
	}
	if ahead != nil {
		// Most often the answer is in: take it without a timer.
		if seen, err := ahead.wait(answered); !errors.Is(err, context.Canceled) {
			return seen, err
		}
	}
	ctx, cancel := d.storeContext(ctx)
	defer cancel()
	if ahead != nil {
		return ahead.wait(ctx)
	}
	return d.cfg.Store.Seen(ctx, key)
}

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
