// Package correlationtest is the contract every correlation.Store must
// meet. Each implementation runs the same suite, so the embedded store the
// tests use and the Redis store production uses cannot drift apart:
//
//	func TestMyStore(t *testing.T) {
//		correlationtest.Run(t, func(t *testing.T) correlation.Store { return newMyStore(t) })
//	}
//
// The suite uses fresh random event ids in every test, so a store shared
// with other data (a real Redis) only needs its keys cleaned up afterwards.
package correlationtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/correlation"
)

// Run runs the contract against stores made by newStore, one per subtest.
// newStore registers its own cleanup with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) correlation.Store) {
	t.Helper()
	run := func(name string, fn func(*testing.T, correlation.Store)) {
		t.Run(name, func(t *testing.T) { fn(t, newStore(t)) })
	}
	run("NothingRecorded", testNothingRecorded)
	run("RecordAndRead", testRecordAndRead)
	run("MetadataEmptyIsObject", testMetadataEmptyIsObject)
	run("LinearChain", testLinearChain)
	run("Branching", testBranching)
	run("Diamond", testDiamond)
	run("Cycle", testCycle)
	run("DepthBound", testDepthBound)
	run("DefaultDepthIs100", testDefaultDepth)
	run("ManyLinksInOneRecord", testManyLinks)
	run("InvalidLinkWritesNothing", testInvalidLink)
	run("RecordingAgainReplacesParents", testRerecord)
	run("DebugDump", testDebug)
	run("ConcurrentRecords", testConcurrent)
	run("CorrelationChainInPythonOrder", testCorrelationChain)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func ids(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.New()
	}
	return out
}

func sorted(in ...uuid.UUID) []uuid.UUID {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

func record(t *testing.T, s correlation.Store, links ...correlation.Link) {
	t.Helper()
	if err := s.Record(ctx(t), links...); err != nil {
		t.Fatalf("Record: %v", err)
	}
}

func link(child uuid.UUID, parents ...uuid.UUID) correlation.Link {
	return correlation.Link{Child: child, Parents: parents}
}

func equal(t *testing.T, what string, got, want []uuid.UUID) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		if got == nil {
			t.Errorf("%s = nil, want an empty non-nil list", what)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s =\n  %v\nwant\n  %v", what, got, want)
	}
}

func ancestors(t *testing.T, s correlation.Store, id uuid.UUID, depth int) []uuid.UUID {
	t.Helper()
	return noErr(s.Ancestors(ctx(t), id, depth))(t)
}

func descendants(t *testing.T, s correlation.Store, id uuid.UUID, depth int) []uuid.UUID {
	t.Helper()
	return noErr(s.Descendants(ctx(t), id, depth))(t)
}

func parents(t *testing.T, s correlation.Store, id uuid.UUID) []uuid.UUID {
	t.Helper()
	return noErr(s.Parents(ctx(t), id))(t)
}

func children(t *testing.T, s correlation.Store, id uuid.UUID) []uuid.UUID {
	t.Helper()
	return noErr(s.Children(ctx(t), id))(t)
}

// noErr returns v and fails the test at once if err is not nil; call it as
// noErr(s.Debug(...))(t).
func noErr[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// line returns the links n[1] ← n[0], n[2] ← n[1], ...
func line(n []uuid.UUID) []correlation.Link {
	links := make([]correlation.Link, 0, len(n))
	for i := 1; i < len(n); i++ {
		links = append(links, link(n[i], n[i-1]))
	}
	return links
}

func jsonIs(t *testing.T, what string, v any, want string) {
	t.Helper()
	if got := jsonOf(t, v); got != want {
		t.Errorf("%s =\n  %s\nwant\n  %s", what, got, want)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%v): %v", v, err)
	}
	return string(b)
}

func testNothingRecorded(t *testing.T, s correlation.Store) {
	id := uuid.New()
	equal(t, "Parents", parents(t, s, id), nil)
	equal(t, "Children", children(t, s, id), nil)
	equal(t, "Ancestors", ancestors(t, s, id, 0), nil)
	equal(t, "Descendants", descendants(t, s, id, 0), nil)
	md, err := s.Metadata(ctx(t), id)
	if err != nil || md != nil {
		t.Errorf("Metadata = %v, %v; want nil, nil", md, err)
	}
	if _, err := s.Lookup(ctx(t), id); !errors.Is(err, correlation.ErrNotFound) {
		t.Errorf("Lookup err = %v, want ErrNotFound", err)
	}
	d := noErr(s.Debug(ctx(t), id, 0))(t)
	want := fmt.Sprintf(`{"event_id":%q,"parents":[],"children":[],"ancestors":[],"descendants":[],"metadata":null}`, id)
	jsonIs(t, "Debug JSON", d, want)
}

func testRecordAndRead(t *testing.T, s correlation.Store) {
	p := ids(3)
	child := uuid.New()
	created := time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC)
	meta := map[string]any{"reason": "retry", "attempt": 3, "nested": map[string]any{"ok": true}}
	record(t, s, correlation.Link{Child: child, Parents: []uuid.UUID{p[2], p[0], p[1]}, Metadata: meta, CreatedAt: created})

	// Parents keep the recorded order.
	equal(t, "Parents", parents(t, s, child), []uuid.UUID{p[2], p[0], p[1]})
	for _, parent := range p {
		equal(t, "Children of a parent", children(t, s, parent), []uuid.UUID{child})
	}
	l := noErr(s.Lookup(ctx(t), child))(t)
	if l.Child != child || !l.CreatedAt.Equal(created) {
		t.Errorf("Lookup = child %s created %s, want %s %s", l.Child, l.CreatedAt, child, created)
	}
	md := noErr(s.Metadata(ctx(t), child))(t)
	jsonIs(t, "Metadata", md, jsonOf(t, meta))
	jsonIs(t, "Lookup metadata", l.Metadata, jsonOf(t, meta))

	// A zero CreatedAt is stamped with the time of the call.
	other := uuid.New()
	before := time.Now().Add(-time.Second)
	record(t, s, link(other, p[0]))
	l = noErr(s.Lookup(ctx(t), other))(t)
	if l.CreatedAt.Before(before) || l.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt = %s, want about now", l.CreatedAt)
	}
	equal(t, "Children", children(t, s, p[0]), sorted(child, other))
}

func testMetadataEmptyIsObject(t *testing.T, s correlation.Store) {
	a, b := uuid.New(), uuid.New()
	record(t, s, link(b, a))
	md := noErr(s.Metadata(ctx(t), b))(t)
	if md == nil || len(md) != 0 {
		t.Errorf("Metadata = %#v, want an empty non-nil map (Python stores metadata or {})", md)
	}
	// The parent has no link of its own: its metadata is null, as in Python.
	md, err := s.Metadata(ctx(t), a)
	if err != nil || md != nil {
		t.Errorf("Metadata(root) = %#v, %v; want nil", md, err)
	}
}

// a ← b ← c ← d
func testLinearChain(t *testing.T, s correlation.Store) {
	a, b, c, d := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	record(t, s, link(b, a), link(c, b), link(d, c))
	equal(t, "Ancestors(d)", ancestors(t, s, d, 0), []uuid.UUID{c, b, a})
	equal(t, "Descendants(a)", descendants(t, s, a, 0), []uuid.UUID{b, c, d})
	equal(t, "Ancestors(a)", ancestors(t, s, a, 0), nil)
	equal(t, "Descendants(d)", descendants(t, s, d, 0), nil)
	equal(t, "Ancestors(b)", ancestors(t, s, b, 0), []uuid.UUID{a})
	equal(t, "Descendants(c)", descendants(t, s, c, 0), []uuid.UUID{d})
}

// a → b1, b2, b3; b1 → c1, c2; b3 → c3
func testBranching(t *testing.T, s correlation.Store) {
	a := uuid.New()
	b := ids(3)
	c := ids(3)
	record(t, s, link(b[0], a), link(b[1], a), link(b[2], a), link(c[0], b[0]), link(c[1], b[0]), link(c[2], b[2]))
	want := append(sorted(b...), sorted(c...)...)
	equal(t, "Descendants(a)", descendants(t, s, a, 0), want)
	equal(t, "Children(a)", children(t, s, a), sorted(b...))
	equal(t, "Ancestors(c1)", ancestors(t, s, c[1], 0), []uuid.UUID{b[0], a})
	equal(t, "Descendants(b2)", descendants(t, s, b[1], 0), nil)
}

// a → b, a → c, b → d, c → d: a is reached twice from d, listed once.
func testDiamond(t *testing.T, s correlation.Store) {
	a, b, c, d := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	record(t, s, link(b, a), link(c, a), link(d, b, c))
	equal(t, "Ancestors(d)", ancestors(t, s, d, 0), append(sorted(b, c), a))
	equal(t, "Descendants(a)", descendants(t, s, a, 0), append(sorted(b, c), d))
	equal(t, "Parents(d)", parents(t, s, d), []uuid.UUID{b, c})
}

func testCycle(t *testing.T, s correlation.Store) {
	a, b := uuid.New(), uuid.New()
	// a → b → a: corrupt data or a replay loop must not hang a query.
	record(t, s, link(b, a), link(a, b))
	equal(t, "Ancestors(a)", ancestors(t, s, a, 0), []uuid.UUID{b})
	equal(t, "Descendants(a)", descendants(t, s, a, 0), []uuid.UUID{b})
	equal(t, "Ancestors(b)", ancestors(t, s, b, 0), []uuid.UUID{a})

	// A self loop: the event is its own parent and child, never its own
	// ancestor.
	x := uuid.New()
	record(t, s, link(x, x))
	equal(t, "Parents(x)", parents(t, s, x), []uuid.UUID{x})
	equal(t, "Children(x)", children(t, s, x), []uuid.UUID{x})
	equal(t, "Ancestors(x)", ancestors(t, s, x, 0), nil)
	equal(t, "Descendants(x)", descendants(t, s, x, 0), nil)
	d := noErr(s.Debug(ctx(t), a, 0))(t)
	equal(t, "Debug(a).Ancestors", d.Ancestors, []uuid.UUID{b})
}

// n0 ← n1 ← … ← n9
func testDepthBound(t *testing.T, s correlation.Store) {
	n := ids(10)
	record(t, s, line(n)...)
	equal(t, "Ancestors(n9, 1)", ancestors(t, s, n[9], 1), []uuid.UUID{n[8]})
	equal(t, "Ancestors(n9, 3)", ancestors(t, s, n[9], 3), []uuid.UUID{n[8], n[7], n[6]})
	equal(t, "Descendants(n0, 2)", descendants(t, s, n[0], 2), []uuid.UUID{n[1], n[2]})
	equal(t, "Ancestors(n9, 9)", ancestors(t, s, n[9], 9), reversed(n[:9]))
	equal(t, "Ancestors(n9, 50)", ancestors(t, s, n[9], 50), reversed(n[:9]))
	equal(t, "Ancestors(n9, -1) = default", ancestors(t, s, n[9], -1), reversed(n[:9]))
	d := noErr(s.Debug(ctx(t), n[5], 2))(t)
	equal(t, "Debug(n5, 2).Ancestors", d.Ancestors, []uuid.UUID{n[4], n[3]})
	equal(t, "Debug(n5, 2).Descendants", d.Descendants, []uuid.UUID{n[6], n[7]})
}

func testDefaultDepth(t *testing.T, s correlation.Store) {
	n := ids(105)
	record(t, s, line(n)...)
	got := ancestors(t, s, n[104], 0)
	if len(got) != correlation.DefaultMaxDepth {
		t.Fatalf("len(Ancestors(n104, 0)) = %d, want %d", len(got), correlation.DefaultMaxDepth)
	}
	equal(t, "Ancestors(n104, 0)", got, reversed(n[4:104]))
	if got := descendants(t, s, n[0], 200); len(got) != 104 {
		t.Errorf("len(Descendants(n0, 200)) = %d, want 104", len(got))
	}
}

func testManyLinks(t *testing.T, s correlation.Store) {
	root := uuid.New()
	kids := ids(50)
	var links []correlation.Link
	for i, k := range kids {
		links = append(links, correlation.Link{Child: k, Parents: []uuid.UUID{root}, Metadata: map[string]any{"i": i}})
	}
	record(t, s, links...)
	equal(t, "Children(root)", children(t, s, root), sorted(kids...))
	for i, k := range kids {
		md := noErr(s.Metadata(ctx(t), k))(t)
		jsonIs(t, fmt.Sprintf("Metadata(kid %d)", i), md, fmt.Sprintf(`{"i":%d}`, i))
	}
}

func testInvalidLink(t *testing.T, s correlation.Store) {
	good := link(uuid.New(), uuid.New())
	for name, bad := range map[string]correlation.Link{
		"nil child":     link(uuid.Nil, uuid.New()),
		"no parents":    link(uuid.New()),
		"nil parent":    link(uuid.New(), uuid.Nil),
		"metadata func": {Child: uuid.New(), Parents: []uuid.UUID{uuid.New()}, Metadata: map[string]any{"f": func() {}}},
	} {
		err := s.Record(ctx(t), good, bad)
		if !errors.Is(err, correlation.ErrInvalidLink) {
			t.Errorf("%s: Record err = %v, want ErrInvalidLink", name, err)
		}
		if err := bad.Validate(); !errors.Is(err, correlation.ErrInvalidLink) {
			t.Errorf("%s: Validate err = %v, want ErrInvalidLink", name, err)
		}
	}
	if _, err := s.Lookup(ctx(t), good.Child); !errors.Is(err, correlation.ErrNotFound) {
		t.Errorf("the valid link of a refused batch was written (Lookup err = %v)", err)
	}
	if err := s.Record(ctx(t)); err != nil {
		t.Errorf("Record() with no links = %v, want nil", err)
	}
}

func testRerecord(t *testing.T, s correlation.Store) {
	p1, p2, child := uuid.New(), uuid.New(), uuid.New()
	record(t, s, correlation.Link{Child: child, Parents: []uuid.UUID{p1}, Metadata: map[string]any{"v": 1}})
	record(t, s, correlation.Link{Child: child, Parents: []uuid.UUID{p2}, Metadata: map[string]any{"v": 2}})
	equal(t, "Parents", parents(t, s, child), []uuid.UUID{p2})
	md := noErr(s.Metadata(ctx(t), child))(t)
	jsonIs(t, "Metadata (the last recorded)", md, `{"v":2}`)
	// As in Python, the child stays in the old parent's set until it expires.
	equal(t, "Children(p1)", children(t, s, p1), []uuid.UUID{child})
	equal(t, "Children(p2)", children(t, s, p2), []uuid.UUID{child})
	// Recording the same link twice changes nothing.
	record(t, s, link(child, p2))
	equal(t, "Children(p2) after a repeat", children(t, s, p2), []uuid.UUID{child})
}

func testDebug(t *testing.T, s correlation.Store) {
	a, b, c, d := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	record(t, s, link(b, a), link(c, a),
		correlation.Link{Child: d, Parents: []uuid.UUID{b, c}, Metadata: map[string]any{"reason": "join"}})
	dump := noErr(s.Debug(ctx(t), b, 0))(t)
	want := fmt.Sprintf(`{"event_id":%q,"parents":[%q],"children":[%q],"ancestors":[%q],"descendants":[%q],"metadata":{}}`, b, a, d, a, d)
	jsonIs(t, "Debug(b) JSON", dump, want)
	dump = noErr(s.Debug(ctx(t), d, 0))(t)
	want = fmt.Sprintf(`{"event_id":%q,"parents":[%q,%q],"children":[],"ancestors":%s,"descendants":[],"metadata":{"reason":"join"}}`,
		d, b, c, jsonOf(t, append(sorted(b, c), a)))
	jsonIs(t, "Debug(d) JSON", dump, want)
}

func testConcurrent(t *testing.T, s correlation.Store) {
	root := uuid.New()
	kids := ids(100)
	var wg sync.WaitGroup
	for i, k := range kids {
		wg.Go(func() {
			l := correlation.Link{Child: k, Parents: []uuid.UUID{root}, Metadata: map[string]any{"i": i}}
			if err := s.Record(context.Background(), l, link(uuid.New(), k)); err != nil {
				t.Errorf("concurrent Record: %v", err)
			}
		})
	}
	if wg.Wait(); t.Failed() {
		t.FailNow()
	}
	equal(t, "Children(root)", children(t, s, root), sorted(kids...))
	if got := descendants(t, s, root, 0); len(got) != 200 {
		t.Errorf("len(Descendants(root)) = %d, want 200", len(got))
	}
}

func reversed(in []uuid.UUID) []uuid.UUID {
	out := slices.Clone(in)
	slices.Reverse(out)
	return out
}

// a → b, a → c, b → d, c → d, d → e; x is unrelated. Python's
// get_correlation_chain walks depth first and appends an event after what
// it leads to: the starting event comes last.
func testCorrelationChain(t *testing.T, s correlation.Store) {
	a, b, c, d, e := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	record(t, s, link(b, a), link(c, a), link(d, b, c), link(e, d), link(uuid.New(), uuid.New()))
	chain := func(id uuid.UUID, dir correlation.Direction, depth int) []uuid.UUID {
		t.Helper()
		return noErr(correlation.CorrelationChain(ctx(t), s, id, dir, depth))(t)
	}
	// d's parents in recorded order: b (and a through it), then c.
	equal(t, "chain of e toward ancestors", chain(e, correlation.TowardAncestors, 0), []uuid.UUID{a, b, c, d, e})
	sc := sorted(b, c)
	equal(t, "chain of a toward descendants", chain(a, correlation.TowardDescendants, 0), []uuid.UUID{e, d, sc[0], sc[1], a})
	equal(t, "chain of a toward ancestors", chain(a, correlation.TowardAncestors, 0), []uuid.UUID{a})
	equal(t, "chain of e, one link", chain(e, correlation.TowardAncestors, 1), []uuid.UUID{d, e})

	// A cycle ends where it closes.
	x, y := uuid.New(), uuid.New()
	record(t, s, link(y, x), link(x, y))
	equal(t, "chain of x in a cycle", chain(x, correlation.TowardAncestors, 0), []uuid.UUID{y, x})

	if _, err := correlation.CorrelationChain(ctx(t), s, a, "sideways", 0); err == nil {
		t.Error("CorrelationChain accepted the direction \"sideways\"")
	}
}
