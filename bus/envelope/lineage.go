package envelope

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// Headers that place an event in its causal chain. They travel as AMQP
// headers (and Watermill metadata), never in the body, which stays the v1
// envelope: the Python consumers ignore them. An event that arrives
// without them (published by Python) gets them from the correlation graph.
const (
	// MetaDepth holds the event's depth in its chain: 0 for a root, one
	// more than its deepest parent otherwise.
	MetaDepth = "x-bb-depth"
	// MetaRoot holds the event id of the chain's root.
	MetaRoot = "x-bb-root"
	// MetaRepeats holds how often each (event_type, source.app) pair occurs
	// among the event's ancestors, URL-query encoded ("type|app=count&..."),
	// so a loop between agents shows without a walk of the graph.
	MetaRepeats = "x-bb-repeats"
	// MetaBudgetReset marks an event re-driven on purpose with a fresh
	// budget (bb dlq replay of a runaway message): it is a new root.
	MetaBudgetReset = "x-bb-budget-reset"
)

// KindRunaway is the failure kind of an event a runaway-chain guard stopped.
const KindRunaway = "runaway"

// The rules of the runaway-chain guard, as RunawayError.Rule names them.
const (
	RuleDepth       = "depth"
	RuleRepeats     = "repeats"
	RuleDescendants = "descendants"
)

// ErrDepthExceeded is wrapped by the error of a publish (or a guard) that
// would take a chain beyond its depth budget.
var ErrDepthExceeded = errors.New("causal depth budget exceeded")

// RunawayError says which budget of a causal chain an event broke.
type RunawayError struct {
	Rule    string    // RuleDepth, RuleRepeats or RuleDescendants
	Root    uuid.UUID // the chain's root event; uuid.Nil when unknown
	Value   int64     // the depth, the repeat count or the descendants counted
	Limit   int64     // the budget it broke
	Pair    string    // RuleRepeats: the repeated "event_type|source.app"
	EventID string    // the event stopped, if known
}

func (e *RunawayError) Error() string {
	root := "unknown"
	if e.Root != uuid.Nil {
		root = e.Root.String()
	}
	switch e.Rule {
	case RuleDepth:
		return fmt.Sprintf("runaway chain (rule depth): event %s at depth %d exceeds BB_MAX_DEPTH=%d, root %s", e.EventID, e.Value, e.Limit, root)
	case RuleRepeats:
		return fmt.Sprintf("runaway chain (rule repeats): %q occurs %d times among the ancestors of event %s, above BB_MAX_REPEATS=%d, root %s", e.Pair, e.Value, e.EventID, e.Limit, root)
	default:
		return fmt.Sprintf("runaway chain (rule descendants): root %s caused %d events, above BB_MAX_DESCENDANTS=%d (event %s)", root, e.Value, e.Limit, e.EventID)
	}
}

// Is makes a depth violation match ErrDepthExceeded.
func (e *RunawayError) Is(target error) bool {
	return target == ErrDepthExceeded && e.Rule == RuleDepth
}

// Lineage is an event's place in its causal chain.
type Lineage struct {
	Depth int       // 0 for a root
	Root  uuid.UUID // the root's event id
	// Repeats counts each "event_type|source.app" pair among the ancestors.
	// Nil means none (a root, or not known).
	Repeats map[string]int
	// Pair is the event's own "event_type|source.app"; its children count it.
	Pair string
}

// Pair joins an event type and a source app the way Lineage counts them.
func Pair(eventType, app string) string { return eventType + "|" + app }

// Child is the lineage of an event that the event of l caused.
func (l Lineage) Child() Lineage {
	rep := make(map[string]int, len(l.Repeats)+1)
	for k, v := range l.Repeats {
		rep[k] = v
	}
	if l.Pair != "" {
		rep[l.Pair]++
	}
	return Lineage{Depth: l.Depth + 1, Root: l.Root, Repeats: rep}
}

// MaxRepeat returns the pair that occurs most often among the ancestors,
// and how often; ties go to the pair that sorts first.
func (l Lineage) MaxRepeat() (string, int) {
	var pair string
	var n int
	for k, v := range l.Repeats {
		if v > n || v == n && k < pair {
			pair, n = k, v
		}
	}
	return pair, n
}

// EncodeRepeats writes Repeats in the form of MetaRepeats; "" when empty.
func (l Lineage) EncodeRepeats() string {
	if len(l.Repeats) == 0 {
		return ""
	}
	v := make(url.Values, len(l.Repeats))
	for k, n := range l.Repeats {
		v[k] = []string{strconv.Itoa(n)}
	}
	return v.Encode()
}

// DecodeRepeats reads the form of MetaRepeats; entries that do not parse are skipped.
func DecodeRepeats(s string) map[string]int {
	if s == "" {
		return nil
	}
	v, _ := url.ParseQuery(s)
	out := make(map[string]int, len(v))
	for k, vs := range v {
		if len(vs) == 0 {
			continue
		}
		if n, err := strconv.Atoi(vs[len(vs)-1]); err == nil && n > 0 {
			out[k] = n
		}
	}
	return out
}

// LineageOf reads the lineage headers of msg; ok is false when MetaDepth
// or MetaRoot is absent or does not parse. Pair is filled from the
// message's event type and source app.
func LineageOf(msg *message.Message) (Lineage, bool) {
	d, r := msg.Metadata.Get(MetaDepth), msg.Metadata.Get(MetaRoot)
	if d == "" || r == "" {
		return Lineage{}, false
	}
	depth, err := strconv.Atoi(d)
	if err != nil || depth < 0 {
		return Lineage{}, false
	}
	root, err := uuid.Parse(r)
	if err != nil {
		return Lineage{}, false
	}
	return Lineage{Depth: depth, Root: root, Repeats: DecodeRepeats(msg.Metadata.Get(MetaRepeats)),
		Pair: Pair(EventType(msg), msg.Metadata.Get(MetaSourceApp))}, true
}

// SetLineage writes the lineage headers of msg.
func SetLineage(msg *message.Message, l Lineage) {
	msg.Metadata.Set(MetaDepth, strconv.Itoa(l.Depth))
	msg.Metadata.Set(MetaRoot, l.Root.String())
	if rep := l.EncodeRepeats(); rep != "" {
		msg.Metadata.Set(MetaRepeats, rep)
	} else {
		delete(msg.Metadata, MetaRepeats)
	}
}

// ClearLineage removes the lineage headers, so the message counts as a
// new root where it is handled next.
func ClearLineage(msg *message.Message) {
	delete(msg.Metadata, MetaDepth)
	delete(msg.Metadata, MetaRoot)
	delete(msg.Metadata, MetaRepeats)
}

// KnownLineage is the lineage of a handled message known without the
// correlation graph: its headers; or, for a message with no parents or
// marked MetaBudgetReset, a root's.
func KnownLineage(msg *message.Message) (Lineage, bool) {
	if msg.Metadata.Get(MetaBudgetReset) != "" {
		return RootLineage(msg)
	}
	if l, ok := LineageOf(msg); ok {
		return l, true
	}
	if msg.Metadata.Get(MetaCorrelationIDs) == "" {
		return RootLineage(msg)
	}
	return Lineage{}, false
}

// RootLineage is the lineage of a message that starts a chain.
func RootLineage(msg *message.Message) (Lineage, bool) {
	id, err := uuid.Parse(msg.UUID)
	if err != nil {
		return Lineage{}, false
	}
	return Lineage{Root: id, Pair: Pair(EventType(msg), msg.Metadata.Get(MetaSourceApp))}, true
}

type lineageKey struct{}

// lineageCtx carries a lineage. It is context.WithValue in one allocation
// instead of two (the context and the boxed Lineage): every handled
// message gets one.
type lineageCtx struct {
	context.Context
	l Lineage
}

func (c *lineageCtx) Value(key any) any {
	if key == (lineageKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// WithLineage returns a context that says: the event being handled has
// lineage l, so what is published with it is l.Child().
func WithLineage(ctx context.Context, l Lineage) context.Context {
	return &lineageCtx{Context: ctx, l: l}
}

// LineageFromContext returns what WithLineage set.
func LineageFromContext(ctx context.Context) (Lineage, bool) {
	if c, ok := ctx.Value(lineageKey{}).(*lineageCtx); ok {
		return c.l, true
	}
	return Lineage{}, false
}

// StampChild gives msg, published while the event of ctx is handled, the
// child lineage of that event, unless msg has lineage headers already. It
// returns the lineage msg carries and whether it carries one.
func StampChild(ctx context.Context, msg *message.Message) (Lineage, bool) {
	if l, ok := LineageOf(msg); ok {
		return l, true
	}
	parent, ok := LineageFromContext(ctx)
	if !ok {
		return Lineage{}, false
	}
	child := parent.Child()
	SetLineage(msg, child)
	return child, true
}

// CheckDepth returns a permanent *RunawayError (kind KindRunaway, matching
// ErrDepthExceeded) when l is deeper than maxDepth; 0 turns the check off.
func CheckDepth(l Lineage, maxDepth int, eventID string) error {
	if maxDepth <= 0 || l.Depth <= maxDepth {
		return nil
	}
	return &PermanentError{Kind: KindRunaway, Err: &RunawayError{Rule: RuleDepth, Root: l.Root,
		Value: int64(l.Depth), Limit: int64(maxDepth), EventID: eventID}}
}
