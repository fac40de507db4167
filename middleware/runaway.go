package middleware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	stdjson "encoding/json"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
)

// Defaults of the runaway-chain budgets, the defaults of BB_MAX_DEPTH,
// BB_MAX_REPEATS and BB_MAX_DESCENDANTS.
const (
	DefaultMaxDepth       = 32
	DefaultMaxRepeats     = 8
	DefaultMaxDescendants = 10000
)

// LinkReader reads the correlation links of many events in one round trip;
// *correlation.RedisStore (and the embedded store) implement it.
type LinkReader interface {
	LookupMany(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]correlation.Link, error)
}

var _ LinkReader = (*correlation.RedisStore)(nil)

// DescendantCounter adds to per-root event counters shared by every replica
// and returns their new totals. RedisDescendantCounter is one.
type DescendantCounter interface {
	AddDescendants(ctx context.Context, add map[uuid.UUID]int64) (map[uuid.UUID]int64, error)
}

// GuardConfig configures Guard. A limit of 0 turns its rule off, as the
// setting does; DefaultMax* are the settings' defaults.
type GuardConfig struct {
	// MaxDepth parks an event deeper than this in its chain. Optional.
	MaxDepth int
	// MaxRepeats parks an event whose ancestors hold one (event_type,
	// source.app) pair more often than this. Optional.
	MaxRepeats int
	// MaxDescendants parks the events of a root that caused more than this
	// many; it needs Counter. Optional.
	MaxDescendants int
	// Links resolves the depth and root of an event that arrives without
	// the headers (published by Python) from its correlation_ids. Optional;
	// without it such an event is let through unplaced, and its children
	// carry no depth either.
	Links LinkReader
	// Counter counts each root's descendants. Optional; without it the
	// descendants rule is off. If it is a ParkNoter too, each event parked
	// is noted with its reason, in the background, for bb trace.
	Counter DescendantCounter
	// LookupTimeout bounds the resolution of one event through Links, and
	// one batch of counter updates. Optional; default 500ms.
	LookupTimeout time.Duration
	// MaxHops bounds the walk up the graph when MaxDepth is off (with it,
	// the walk stops once the budget is known to be exceeded). Optional;
	// default 64.
	MaxHops int
	// WarnInterval is the least time between two warnings about Redis.
	// Optional; default 1s; negative logs every failure.
	WarnInterval time.Duration
	// Logger receives the warnings. Optional; default logs nothing.
	Logger *slog.Logger
}

func (c *GuardConfig) setDefaults() {
	c.LookupTimeout = cmp.Or(c.LookupTimeout, 500*time.Millisecond)
	c.MaxHops = cmp.Or(c.MaxHops, 64)
	c.WarnInterval = cmp.Or(c.WarnInterval, time.Second)
	c.Logger = cmp.Or(c.Logger, discardLogger)
}

// Validate reports every problem of the configuration at once.
func (c GuardConfig) Validate() error {
	var p problems
	p.add(c.MaxDepth < 0, "MaxDepth %d is negative (0 turns the rule off)", c.MaxDepth)
	p.add(c.MaxRepeats < 0, "MaxRepeats %d is negative (0 turns the rule off)", c.MaxRepeats)
	p.add(c.MaxDescendants < 0, "MaxDescendants %d is negative (0 turns the rule off)", c.MaxDescendants)
	p.add(c.LookupTimeout < 0, "LookupTimeout %s is negative", c.LookupTimeout)
	p.add(c.MaxHops < 0, "MaxHops %d is negative", c.MaxHops)
	return p.err("GuardConfig")
}

// GuardStats counts what a Guard did since it was built.
type GuardStats struct {
	ParkedDepth       uint64 // events stopped by the depth rule
	ParkedRepeats     uint64 // events stopped by the repeats rule
	ParkedDescendants uint64 // events stopped by the descendants rule
	Lookups           uint64 // events placed through the graph in Redis
	RedisErrors       uint64 // Redis calls that failed or timed out (let through)
}

// Parked returns the events stopped under rule (an envelope.Rule*).
func (s GuardStats) Parked(rule string) uint64 {
	switch rule {
	case envelope.RuleDepth:
		return s.ParkedDepth
	case envelope.RuleRepeats:
		return s.ParkedRepeats
	case envelope.RuleDescendants:
		return s.ParkedDescendants
	}
	return 0
}

// Guard is the runaway-chain guard: install its Middleware inside Poison
// (it fails with a permanent error of kind envelope.KindRunaway, which
// Poison parks) and outside Causation (it puts the event's lineage into the
// context, from which children get their depth and root). Build it with
// NewGuard. It is safe for concurrent use.
//
// An event's lineage comes from its headers (envelope.MetaDepth,
// MetaRoot, MetaRepeats); one with no parents is a root; one with parents
// but no headers (from Python) is placed by walking its ancestors in the
// correlation graph, one pipelined round trip per level, stopping at the
// first link that records its depth (as this module's links do). Then:
//
//   - depth above MaxDepth parks it (rule depth);
//   - a pair of its ancestors above MaxRepeats parks it (rule repeats);
//   - a root that caused more than MaxDescendants events parks it (rule
//     descendants). The count lives in Redis, per root, and is updated in
//     the background: the guard checks the total the last update returned,
//     so the rule may act a few events late but costs no round trip.
//
// When Redis fails, the event is let through, a warning is logged (at most
// once per WarnInterval) and RedisErrors counts it: the guard never blocks
// the bus.
type Guard struct {
	cfg GuardConfig

	parked                [3]atomic.Uint64
	lookups, redisErrors  atomic.Uint64
	lastWarn, suppressedW atomic.Int64

	counts *descendantTally // nil without Counter or MaxDescendants
}

// NewGuard returns the runaway-chain guard.
func NewGuard(cfg GuardConfig) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	g := &Guard{cfg: cfg}
	if cfg.Counter != nil && cfg.MaxDescendants > 0 {
		g.counts = &descendantTally{g: g, known: map[uuid.UUID]int64{}, pending: map[uuid.UUID]int64{}}
	}
	return g, nil
}

// Stats returns the counters.
func (g *Guard) Stats() GuardStats {
	return GuardStats{ParkedDepth: g.parked[0].Load(), ParkedRepeats: g.parked[1].Load(), ParkedDescendants: g.parked[2].Load(),
		Lookups: g.lookups.Load(), RedisErrors: g.redisErrors.Load()}
}

// Middleware implements message.HandlerMiddleware.
func (g *Guard) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		l, ok := g.lineage(msg)
		if !ok {
			return h(msg)
		}
		if err := g.check(msg, l); err != nil {
			return nil, err
		}
		msg.SetContext(envelope.WithLineage(msg.Context(), l))
		return h(msg)
	}
}

// Flush waits until the descendant counts queued before it are written, or
// ctx ends.
func (g *Guard) Flush(ctx context.Context) error {
	if g.counts == nil {
		return nil
	}
	return g.counts.flush(ctx)
}

func (g *Guard) check(msg *message.Message, l envelope.Lineage) error {
	var re *envelope.RunawayError
	switch pair, n := l.MaxRepeat(); {
	case g.cfg.MaxDepth > 0 && l.Depth > g.cfg.MaxDepth:
		re = &envelope.RunawayError{Rule: envelope.RuleDepth, Value: int64(l.Depth), Limit: int64(g.cfg.MaxDepth)}
		g.parked[0].Add(1)
	case g.cfg.MaxRepeats > 0 && n > g.cfg.MaxRepeats:
		re = &envelope.RunawayError{Rule: envelope.RuleRepeats, Value: int64(n), Limit: int64(g.cfg.MaxRepeats), Pair: pair}
		g.parked[1].Add(1)
	case g.counts != nil && l.Depth > 0:
		if total := g.counts.add(l.Root); total > int64(g.cfg.MaxDescendants) {
			re = &envelope.RunawayError{Rule: envelope.RuleDescendants, Value: total, Limit: int64(g.cfg.MaxDescendants)}
			g.parked[2].Add(1)
		}
	}
	if re == nil {
		return nil
	}
	re.Root, re.EventID = l.Root, msg.UUID
	err := &envelope.PermanentError{Kind: envelope.KindRunaway, Err: re}
	if n, ok := g.cfg.Counter.(ParkNoter); ok {
		// Off the delivery's path: a note for tools, not for the bus.
		id, reason := msg.UUID, re.Error()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LookupTimeout)
			defer cancel()
			if nerr := n.NoteParked(ctx, id, reason); nerr != nil {
				g.redisFailed("cannot note a parked event", nerr, slog.String("event_id", id))
			}
		}()
	}
	return err
}

// lineage places msg in its chain; ok is false when it cannot be placed.
func (g *Guard) lineage(msg *message.Message) (envelope.Lineage, bool) {
	if l, ok := envelope.KnownLineage(msg); ok {
		return l, true
	}
	parents := envelope.CorrelationIDs(msg)
	if g.cfg.Links == nil || len(parents) == 0 {
		return envelope.Lineage{}, false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(msg.Context()), g.cfg.LookupTimeout)
	defer cancel()
	l, err := g.resolve(ctx, parents)
	if err != nil {
		g.redisFailed("cannot place the event in its chain; letting it through unguarded", err, slog.String("event_id", msg.UUID))
		return envelope.Lineage{}, false
	}
	g.lookups.Add(1)
	l.Pair = envelope.Pair(envelope.EventType(msg), msg.Metadata.Get(envelope.MetaSourceApp))
	// Its retries, and its parked copy, need no second walk.
	envelope.SetLineage(msg, l)
	return l, true
}

// resolve walks up from parents, a level per round trip: depth is 1 + the
// deepest parent, root that parent's root. A link that records its depth
// ends the walk on its branch; one not recorded is a root. The walk stops
// when the depth is known to exceed MaxDepth (or after MaxHops levels),
// taking the farthest event reached as the root.
func (g *Guard) resolve(ctx context.Context, parents []uuid.UUID) (envelope.Lineage, error) {
	limit := g.cfg.MaxHops
	if g.cfg.MaxDepth > 0 {
		limit = g.cfg.MaxDepth
	}
	best := envelope.Lineage{Depth: -1}
	repeats := map[string]int{}
	seen := map[uuid.UUID]bool{}
	frontier := unseen(seen, nil, parents)
	for hop := 1; len(frontier) > 0; hop++ {
		links, err := g.cfg.Links.LookupMany(ctx, frontier)
		if err != nil {
			return envelope.Lineage{}, err
		}
		var next []uuid.UUID
		for _, id := range frontier {
			link, found := links[id]
			if !found {
				consider(&best, hop, id) // nothing recorded: a root
				continue
			}
			if t, ok := link.Metadata["event_type"].(string); ok {
				app, _ := link.Metadata["source_app"].(string)
				repeats[envelope.Pair(t, app)]++
			}
			if d, root, ok := recordedPlace(link.Metadata); ok {
				consider(&best, d+hop, root)
				rep, _ := link.Metadata[LinkMetaRepeats].(string)
				for k, n := range envelope.DecodeRepeats(rep) {
					repeats[k] += n
				}
				continue
			}
			next = unseen(seen, next, link.Parents)
		}
		if hop >= limit && len(next) > 0 {
			// Each event at this level has parents still: the depth is at
			// least hop+1, beyond the budget.
			consider(&best, hop+1, next[0])
			break
		}
		frontier = next
	}
	if best.Depth < 0 {
		return envelope.Lineage{}, errors.New("no ancestor found")
	}
	best.Repeats = repeats
	return best, nil
}

func consider(best *envelope.Lineage, depth int, root uuid.UUID) {
	if depth > best.Depth {
		best.Depth, best.Root = depth, root
	}
}

func unseen(seen map[uuid.UUID]bool, next, ids []uuid.UUID) []uuid.UUID {
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			next = append(next, id)
		}
	}
	return next
}

// recordedPlace reads the depth and root a link's metadata records.
func recordedPlace(md map[string]any) (int, uuid.UUID, bool) {
	rs, _ := md[LinkMetaRoot].(string)
	root, err := uuid.Parse(rs)
	if err != nil {
		return 0, uuid.Nil, false
	}
	var d int
	switch v := md[LinkMetaDepth].(type) {
	case stdjson.Number:
		d, err = strconv.Atoi(string(v))
	case float64:
		d = int(v)
	case int:
		d = v
	case string:
		d, err = strconv.Atoi(v)
	default:
		err = errors.New("no depth")
	}
	if err != nil || d < 0 {
		return 0, uuid.Nil, false
	}
	return d, root, true
}

// redisFailed counts a Redis failure and logs it, at most once per
// WarnInterval with the number of failures not logged since.
func (g *Guard) redisFailed(what string, err error, attrs ...any) {
	g.redisErrors.Add(1)
	if g.cfg.WarnInterval > 0 {
		now := time.Now().UnixNano()
		last := g.lastWarn.Load()
		if last != 0 && now-last < int64(g.cfg.WarnInterval) || !g.lastWarn.CompareAndSwap(last, now) {
			g.suppressedW.Add(1)
			return
		}
	}
	g.cfg.Logger.Warn("runaway guard: "+what, append(attrs, slog.String("error", err.Error()),
		slog.Int64("not_logged_since", g.suppressedW.Swap(0)))...)
}

// descendantTally counts events per root in the background: add returns
// the total the last write to the counter returned, so the delivery's path
// never waits for Redis. A goroutine runs while counts are queued.
type descendantTally struct {
	g *Guard

	mu      sync.Mutex
	known   map[uuid.UUID]int64 // root → total the counter last returned (plus what is queued)
	pending map[uuid.UUID]int64 // root → events not yet written
	idle    chan struct{}       // closed when nothing is queued or being written
	busy    bool
}

// maxKnownRoots bounds the totals kept in memory; the counter has them all.
const maxKnownRoots = 16384

func (t *descendantTally) add(root uuid.UUID) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.busy && len(t.pending) == 0 {
		t.idle = make(chan struct{})
	}
	t.pending[root]++
	if len(t.known) >= maxKnownRoots {
		clear(t.known)
	}
	t.known[root]++
	total := t.known[root]
	if !t.busy {
		t.busy = true
		go t.write()
	}
	return total
}

func (t *descendantTally) write() {
	for {
		t.mu.Lock()
		if len(t.pending) == 0 {
			t.busy = false
			close(t.idle)
			t.mu.Unlock()
			return
		}
		batch := t.pending
		t.pending = make(map[uuid.UUID]int64, len(batch))
		t.mu.Unlock()

		totals, ok := t.send(batch)

		t.mu.Lock()
		if ok {
			for root, total := range totals {
				// Events counted locally since the batch was taken stay added.
				t.known[root] = total + t.pending[root]
			}
		} else {
			// Redis is away: the rule holds only what Redis confirmed, so
			// that a lost counter lets events through rather than this
			// process's partial view park them.
			for root, n := range batch {
				if t.known[root] -= n; t.known[root] <= 0 {
					delete(t.known, root)
				}
			}
		}
		t.mu.Unlock()
	}
}

func (t *descendantTally) send(batch map[uuid.UUID]int64) (totals map[uuid.UUID]int64, ok bool) {
	g := t.g
	defer func() {
		// Not a handler's goroutine: a counter that panics must cost
		// this batch, not the process.
		if r := recover(); r != nil {
			g.redisFailed("cannot count descendants", fmt.Errorf("the counter panicked: %v", r))
			totals, ok = nil, false
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LookupTimeout)
	defer cancel()
	totals, err := g.cfg.Counter.AddDescendants(ctx, batch)
	if err != nil {
		g.redisFailed("cannot count descendants; letting their events through", err, slog.Int("roots", len(batch)))
		return nil, false
	}
	return totals, true
}

func (t *descendantTally) flush(ctx context.Context) error {
	t.mu.Lock()
	if !t.busy {
		t.mu.Unlock()
		return nil
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot flush descendant counts: %w", ctx.Err())
	}
}
