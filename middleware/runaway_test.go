package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/middleware"
)

func newGuard(t testing.TB, cfg middleware.GuardConfig) *middleware.Guard {
	t.Helper()
	g, err := middleware.NewGuard(cfg)
	if err != nil {
		t.Fatalf("NewGuard: %v", err)
	}
	return g
}

// guardMsg is an event of type eventType from app, with parents.
func guardMsg(t testing.TB, eventType, app string, parents ...uuid.UUID) *message.Message {
	t.Helper()
	env, err := envelope.New(eventType, map[string]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	env.Source.App = app
	env.CorrelationIDs = parents
	msg, err := envelope.NewMessage(env)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// runGuarded runs msg through g into a handler that records the lineage it
// sees; it returns the chain's error and whether the handler ran.
func runGuarded(g *middleware.Guard, msg *message.Message) (envelope.Lineage, bool, error) {
	var seen envelope.Lineage
	var ran bool
	_, err := g.Middleware(func(m *message.Message) ([]*message.Message, error) {
		ran = true
		seen, _ = envelope.LineageFromContext(m.Context())
		return nil, nil
	})(msg)
	return seen, ran, err
}

func wantRunaway(t *testing.T, err error, rule string, ran bool) *envelope.RunawayError {
	t.Helper()
	if ran {
		t.Error("the handler ran; want it stopped")
	}
	pe, ok := errors.AsType[*envelope.PermanentError](err)
	if !ok || pe.Kind != envelope.KindRunaway {
		t.Fatalf("err = %v, want a permanent error of kind %q", err, envelope.KindRunaway)
	}
	re, ok := errors.AsType[*envelope.RunawayError](err)
	if !ok || re.Rule != rule {
		t.Fatalf("err = %v, want a RunawayError of rule %q", err, rule)
	}
	return re
}

func TestGuardConfig_Validate_joinsEveryProblem(t *testing.T) {
	err := middleware.GuardConfig{MaxDepth: -1, MaxRepeats: -1, MaxDescendants: -1, LookupTimeout: -1}.Validate()
	for _, want := range []string{"MaxDepth", "MaxRepeats", "MaxDescendants", "LookupTimeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestGuard_depthRule_parksAboveBudget(t *testing.T) {
	g := newGuard(t, middleware.GuardConfig{MaxDepth: 32})
	root := uuid.New()
	for _, depth := range []int{32, 33} {
		msg := guardMsg(t, "agent.thread.prompt", "a", uuid.New())
		envelope.SetLineage(msg, envelope.Lineage{Depth: depth, Root: root})
		l, ran, err := runGuarded(g, msg)
		if depth == 32 {
			if err != nil || !ran || l.Depth != 32 || l.Root != root {
				t.Fatalf("depth 32: err=%v ran=%v lineage=%+v, want it handled with its lineage", err, ran, l)
			}
			continue
		}
		re := wantRunaway(t, err, envelope.RuleDepth, ran)
		if re.Root != root || re.Value != 33 || re.Limit != 32 || !errors.Is(err, envelope.ErrDepthExceeded) {
			t.Errorf("RunawayError = %+v, want root %s, 33 over 32, matching ErrDepthExceeded", re, root)
		}
		for _, want := range []string{"rule depth", root.String(), "33", "BB_MAX_DEPTH=32"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("reason %q does not name %q", err, want)
			}
		}
	}
	if s := g.Stats(); s.ParkedDepth != 1 || s.Parked(envelope.RuleDepth) != 1 {
		t.Errorf("Stats = %+v, want one parked by depth", s)
	}
}

func TestGuard_repeatsRule_parksALoopBetweenAgents(t *testing.T) {
	g := newGuard(t, middleware.GuardConfig{MaxRepeats: 8})
	for _, n := range []int{8, 9} {
		msg := guardMsg(t, "agent.thread.prompt", "b", uuid.New())
		envelope.SetLineage(msg, envelope.Lineage{Depth: 2 * n, Root: uuid.New(),
			Repeats: map[string]int{"agent.thread.prompt|a": n, "agent.thread.response|b": n - 1}})
		_, ran, err := runGuarded(g, msg)
		if n == 8 {
			if err != nil || !ran {
				t.Fatalf("8 repeats: err=%v ran=%v, want it handled", err, ran)
			}
			continue
		}
		re := wantRunaway(t, err, envelope.RuleRepeats, ran)
		if re.Pair != "agent.thread.prompt|a" || re.Value != 9 || !strings.Contains(err.Error(), "BB_MAX_REPEATS=8") {
			t.Errorf("err = %v (%+v), want the pair agent.thread.prompt|a 9 times over 8", err, re)
		}
	}
}

func TestGuard_rulesOff_withZero(t *testing.T) {
	g := newGuard(t, middleware.GuardConfig{})
	msg := guardMsg(t, "agent.thread.prompt", "a", uuid.New())
	envelope.SetLineage(msg, envelope.Lineage{Depth: 1000, Root: uuid.New(), Repeats: map[string]int{"x|y": 1000}})
	if _, ran, err := runGuarded(g, msg); err != nil || !ran {
		t.Fatalf("err=%v ran=%v, want every rule off", err, ran)
	}
}

// memCounter is a DescendantCounter in memory that can be made to fail.
type memCounter struct {
	totals map[uuid.UUID]int64
	fail   atomic.Bool
}

func (c *memCounter) AddDescendants(_ context.Context, add map[uuid.UUID]int64) (map[uuid.UUID]int64, error) {
	if c.fail.Load() {
		return nil, errors.New("redis: connection refused")
	}
	out := map[uuid.UUID]int64{}
	for root, n := range add {
		c.totals[root] += n
		out[root] = c.totals[root]
	}
	return out, nil
}

func TestGuard_descendantsRule_countsPerRootAcrossReplicas(t *testing.T) {
	srv := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	counter := middleware.NewRedisDescendantCounter(client, "", time.Hour)
	// Two replicas share the counter in Redis.
	a := newGuard(t, middleware.GuardConfig{MaxDescendants: 5, Counter: counter})
	b := newGuard(t, middleware.GuardConfig{MaxDescendants: 5, Counter: counter})
	root := uuid.New()
	send := func(g *middleware.Guard) (bool, error) {
		msg := guardMsg(t, "agent.thread.response", "a", uuid.New())
		envelope.SetLineage(msg, envelope.Lineage{Depth: 1, Root: root})
		_, ran, err := runGuarded(g, msg)
		if ferr := g.Flush(context.Background()); ferr != nil {
			t.Fatal(ferr)
		}
		return ran, err
	}
	for i := range 3 {
		if ran, err := send(a); err != nil || !ran {
			t.Fatalf("event %d on a: err=%v ran=%v", i, err, ran)
		}
	}
	for i := range 2 {
		if ran, err := send(b); err != nil || !ran {
			t.Fatalf("event %d on b: err=%v ran=%v", i, err, ran)
		}
	}
	// b has seen the total of 5 from Redis: its next event is the 6th.
	ran, err := send(b)
	re := wantRunaway(t, err, envelope.RuleDescendants, ran)
	if re.Root != root || re.Value != 6 || re.Limit != 5 {
		t.Errorf("RunawayError = %+v, want root %s at 6 over 5", re, root)
	}
	key := counter.Key(root)
	if got, _ := srv.Get(key); got != "6" {
		t.Errorf("counter %s = %q, want 6", key, got)
	}
	if ttl := srv.TTL(key); ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL of %s = %s, want up to an hour", key, ttl)
	}
	// Another root has a budget of its own.
	msg := guardMsg(t, "agent.thread.response", "a", uuid.New())
	envelope.SetLineage(msg, envelope.Lineage{Depth: 1, Root: uuid.New()})
	if _, ran, err := runGuarded(b, msg); err != nil || !ran {
		t.Errorf("another root: err=%v ran=%v, want it handled", err, ran)
	}
}

// failingLinks is a LinkReader whose Redis is away.
type failingLinks struct{ calls atomic.Int64 }

func (f *failingLinks) LookupMany(context.Context, []uuid.UUID) (map[uuid.UUID]correlation.Link, error) {
	f.calls.Add(1)
	return nil, errors.New("dial tcp 127.0.0.1:6379: connection refused")
}

func TestGuard_redisAway_letsThroughWarnsAndCounts(t *testing.T) {
	var logs bytes.Buffer
	links := &failingLinks{}
	counter := &memCounter{totals: map[uuid.UUID]int64{}}
	counter.fail.Store(true)
	g := newGuard(t, middleware.GuardConfig{MaxDepth: 3, MaxDescendants: 1, Links: links, Counter: counter,
		WarnInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 3 {
		// From Python: parents, no headers.
		if _, ran, err := runGuarded(g, guardMsg(t, "agent.thread.prompt", "py", uuid.New())); err != nil || !ran {
			t.Fatalf("err=%v ran=%v, want it let through", err, ran)
		}
	}
	root := uuid.New()
	for range 3 {
		msg := guardMsg(t, "agent.thread.prompt", "go", uuid.New())
		envelope.SetLineage(msg, envelope.Lineage{Depth: 1, Root: root})
		_, ran, err := runGuarded(g, msg)
		if ferr := g.Flush(context.Background()); ferr != nil {
			t.Fatal(ferr)
		}
		if err != nil || !ran {
			t.Fatalf("counter away: err=%v ran=%v, want it let through", err, ran)
		}
	}
	s := g.Stats()
	if s.RedisErrors != 6 || links.calls.Load() != 3 {
		t.Errorf("Stats = %+v, lookups %d; want every failure counted", s, links.calls.Load())
	}
	if n := strings.Count(logs.String(), "runaway guard"); n != 1 {
		t.Errorf("%d warnings logged, want 1 (rate-limited):\n%s", n, logs.String())
	}
}

// countingLinks counts the round trips of a LinkReader.
type countingLinks struct {
	middleware.LinkReader
	trips atomic.Int64
}

func (c *countingLinks) LookupMany(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]correlation.Link, error) {
	c.trips.Add(1)
	return c.LinkReader.LookupMany(ctx, ids)
}

// pythonChain records a chain of n links as Python's tracker writes them
// (no depth metadata) and returns its events, root first.
func pythonChain(t testing.TB, store correlation.Writer, n int) []uuid.UUID {
	t.Helper()
	ids := []uuid.UUID{uuid.New()}
	for i := 1; i <= n; i++ {
		id := uuid.New()
		if err := store.Record(context.Background(), correlation.Link{Child: id, Parents: []uuid.UUID{ids[i-1]},
			Metadata: map[string]any{"published_by": "python"}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func TestGuard_pythonOrigin_placedThroughRedis(t *testing.T) {
	store, links, g := pythonGuard(t)

	chain := pythonChain(t, store, 5) // depths 0..5
	msg := guardMsg(t, "agent.thread.prompt", "py", chain[5])
	l, ran, err := runGuarded(g, msg)
	if err != nil || !ran || l.Depth != 6 || l.Root != chain[0] {
		t.Fatalf("err=%v ran=%v lineage=%+v, want depth 6 under root %s", err, ran, l, chain[0])
	}
	if trips := links.trips.Load(); trips != 6 {
		t.Errorf("%d round trips, want 6 (one per level up to the root)", trips)
	}
	if d, _ := envelope.LineageOf(msg); d.Depth != 6 {
		t.Errorf("headers after the lookup: %+v, want them set for retries", d)
	}

	// A Go child of a deep Python event records its place: the next lookup
	// of its own child is one round trip.
	goChild := uuid.New()
	child := guardMsg(t, "agent.thread.response", "go", uuid.MustParse(msg.UUID))
	envelope.SetLineage(child, l.Child())
	if err := store.Record(context.Background(), correlation.Link{Child: goChild, Parents: []uuid.UUID{chain[5]},
		Metadata: middleware.DefaultLinkMetadata(middleware.LinkMetadataParams{Message: child})}); err != nil {
		t.Fatal(err)
	}
	links.trips.Store(0)
	l, _, err = runGuarded(g, guardMsg(t, "agent.thread.prompt", "py", goChild))
	if err != nil || l.Depth != 8 || l.Root != chain[0] || links.trips.Load() != 1 {
		t.Errorf("err=%v lineage=%+v trips=%d, want depth 8 under %s in one round trip", err, l, links.trips.Load(), chain[0])
	}
}

func TestGuard_pythonChain40Deep_nextEventParkedByDepth(t *testing.T) {
	store, links, g := pythonGuard(t)
	chain := pythonChain(t, store, 40)
	_, ran, err := runGuarded(g, guardMsg(t, "agent.thread.prompt", "py", chain[40]))
	re := wantRunaway(t, err, envelope.RuleDepth, ran)
	if re.Value <= 32 || re.Value > 41 {
		t.Errorf("depth %d, want above 32 and at most 41", re.Value)
	}
	if trips := links.trips.Load(); trips > 32 {
		t.Errorf("%d round trips, want no more than the budget needs (32)", trips)
	}
}

func TestCausation_stampsChildLineage(t *testing.T) {
	parent := guardMsg(t, "agent.thread.prompt", "a", uuid.New())
	root := uuid.New()
	envelope.SetLineage(parent, envelope.Lineage{Depth: 4, Root: root, Repeats: map[string]int{"agent.thread.prompt|a": 2}})
	var out *message.Message
	_, err := middleware.Causation(func(m *message.Message) ([]*message.Message, error) {
		out = guardMsg(t, "agent.thread.response", "b")
		return []*message.Message{out}, nil
	})(parent)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := envelope.LineageOf(out)
	if !ok || l.Depth != 5 || l.Root != root || l.Repeats["agent.thread.prompt|a"] != 3 {
		t.Errorf("child lineage %+v (ok=%v), want depth 5, root %s, the parent's pair 3 times", l, ok, root)
	}

	// A root: depth 0, root itself; its child depth 1.
	rootMsg := guardMsg(t, "agent.thread.prompt", "a")
	_, _ = middleware.Causation(func(m *message.Message) ([]*message.Message, error) {
		out = guardMsg(t, "agent.thread.response", "b")
		return []*message.Message{out}, nil
	})(rootMsg)
	if l, ok := envelope.LineageOf(out); !ok || l.Depth != 1 || l.Root.String() != rootMsg.UUID {
		t.Errorf("child of a root: %+v (ok=%v), want depth 1 under %s", l, ok, rootMsg.UUID)
	}
}

func TestRecordingPublisher_stampsLineageAndRecordsIt(t *testing.T) {
	rec := notifying(nil)
	capture := &relCapturePublisher{}
	pub := middleware.NewRecordingPublisher(capture, rec)
	parent := uuid.New()
	root := uuid.New()
	ctx := envelope.WithLineage(envelope.WithCause(context.Background(), parent), envelope.Lineage{Depth: 2, Root: root, Pair: "x|y"})
	msg := guardMsg(t, "agent.thread.response", "b")
	msg.SetContext(ctx)
	if err := pub.Publish("agent.thread.response", msg); err != nil {
		t.Fatal(err)
	}
	if msg.Metadata.Get(envelope.MetaDepth) != "3" || msg.Metadata.Get(envelope.MetaRoot) != root.String() {
		t.Errorf("headers %v, want depth 3 and root %s", msg.Metadata, root)
	}
	links := rec.next1(t)
	if len(links) != 1 || links[0].Metadata["depth"] != 3 || links[0].Metadata["root"] != root.String() || links[0].Metadata["repeats"] != "x%7Cy=1" {
		t.Errorf("links %+v, want depth 3, root and repeats in the metadata", links)
	}
}

// pythonGuard is a guard with depth 32 that places header-less events
// through an in-process correlation store, counting its round trips.
func pythonGuard(t *testing.T) (*correlation.EmbeddedStore, *countingLinks, *middleware.Guard) {
	t.Helper()
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	links := &countingLinks{LinkReader: store}
	return store, links, newGuard(t, middleware.GuardConfig{MaxDepth: 32, Links: links})
}
