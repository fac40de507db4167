package correlation_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/correlation"
)

func TestRedisStore_costRolledUpPerRootAndAgent(t *testing.T) {
	stores(t, func(t *testing.T, c redis.UniversalClient, prefix string) {
		const ttl = 2 * time.Hour
		s := newStore(t, c, correlation.RedisConfig{KeyPrefix: prefix, TTL: ttl})
		ctx := testCtx(t)
		// root (a prompt nobody caused) → mid → two responses of two agents.
		root, mid, a, b := uuid.New(), uuid.New(), uuid.New(), uuid.New()
		if err := s.Record(ctx, correlation.Link{Child: mid, Parents: []uuid.UUID{root}}); err != nil {
			t.Fatal(err)
		}
		la := correlation.Link{Child: a, Parents: []uuid.UUID{mid}, Cost: &correlation.Cost{Agent: "planner", TokensUsed: 100, DurationMS: 1500}}
		lb := correlation.Link{Child: b, Parents: []uuid.UUID{mid}, Cost: &correlation.Cost{Agent: "coder", TokensUsed: 40, DurationMS: 500}}
		if err := s.Record(ctx, la, lb); err != nil {
			t.Fatal(err)
		}
		// Recording a link again (a retried write, a redelivery) counts nothing twice.
		if err := s.Record(ctx, la); err != nil {
			t.Fatal(err)
		}
		want := correlation.CostTotals{Root: root, TokensUsed: 140, DurationMS: 2000, Events: 2, ByAgent: map[string]correlation.AgentCost{
			"planner": {TokensUsed: 100, DurationMS: 1500, Events: 1},
			"coder":   {TokensUsed: 40, DurationMS: 500, Events: 1},
		}}
		got, err := s.Cost(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Cost(root) = %+v\nwant %+v", got, want)
		}
		for _, id := range []uuid.UUID{root, mid, b} {
			if got, err := s.EventCost(ctx, id); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("EventCost(%s) = %+v, %v; want the root's totals", id, got, err)
			}
		}
		if n, err := s.RootTokens(ctx, root); err != nil || n != 140 {
			t.Errorf("RootTokens(root) = %d, %v; want 140", n, err)
		}
		if got := c.TTL(ctx, s.CostKey(root)).Val(); got < ttl-5*time.Second || got > ttl {
			t.Errorf("TTL of the cost hash = %s, want %s, as the links", got, ttl)
		}
		// Nothing charged: zero totals, not an error.
		empty, err := s.Cost(ctx, uuid.New())
		if err != nil || empty.TokensUsed != 0 || empty.Events != 0 || empty.ByAgent == nil {
			t.Errorf("Cost of an unknown root = %+v, %v; want zero totals with an empty ByAgent", empty, err)
		}
	})
}

func TestRedisStore_costOfAPythonShapedChain(t *testing.T) {
	stores(t, func(t *testing.T, c redis.UniversalClient, _ string) {
		// The links exactly as the Python tracker writes them, under its
		// prefix; the ids are fresh and their keys deleted afterwards.
		prefix := correlation.DefaultKeyPrefix
		s := newStore(t, c, correlation.RedisConfig{})
		ctx := testCtx(t)
		chain := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()} // chain[0] is the root
		keys := []string{s.CostKey(chain[0])}
		pipe := c.TxPipeline()
		for i := 1; i < len(chain); i++ {
			fwd, rev := prefix+"forward:"+chain[i].String(), prefix+"reverse:"+chain[i-1].String()
			keys = append(keys, fwd, rev)
			pipe.SetEx(ctx, fwd, fmt.Sprintf(`{"parent_event_ids": [%q], "created_at": "2026-01-29T10:00:00.123456", "metadata": {"event_type": "agent.thread.prompt"}}`, chain[i-1]), 30*24*time.Hour)
			pipe.SAdd(ctx, rev, chain[i].String())
			pipe.Expire(ctx, rev, 30*24*time.Hour)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("writing the Python layout: %v", err)
		}
		resp := uuid.New()
		keys = append(keys, prefix+"forward:"+resp.String(), prefix+"reverse:"+chain[3].String())
		t.Cleanup(func() { c.Del(context.Background(), keys...) })

		// A Go agent answers the last Python event without an x-bb-root.
		err := s.Record(ctx, correlation.Link{Child: resp, Parents: []uuid.UUID{chain[3]},
			Cost: &correlation.Cost{Agent: "go-agent", TokensUsed: 7, DurationMS: 30}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Cost(ctx, chain[0])
		if err != nil {
			t.Fatal(err)
		}
		if got.TokensUsed != 7 || got.DurationMS != 30 || got.ByAgent["go-agent"].Events != 1 {
			t.Errorf("cost charged to the Python root = %+v, want 7 tokens, 30 ms, one go-agent event", got)
		}
		if n, _ := c.Exists(ctx, s.CostKey(chain[3])).Result(); n != 0 {
			t.Errorf("cost charged to the parent %s instead of the root", chain[3])
		}
	})
}

func TestRedisStore_costWithItsRootReadsNothing(t *testing.T) {
	_, c := miniClient(t)
	hook := &roundTrips{}
	c.AddHook(hook)
	s := newStore(t, c, correlation.RedisConfig{})
	root, parent, child := uuid.New(), uuid.New(), uuid.New()
	err := s.Record(testCtx(t), correlation.Link{Child: child, Parents: []uuid.UUID{parent},
		Cost: &correlation.Cost{Root: root, TokensUsed: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if n := hook.n.Load(); n != 1 {
		t.Errorf("Record with the root given took %d round trips, want 1", n)
	}
	if n, _ := s.RootTokens(testCtx(t), root); n != 3 {
		t.Errorf("RootTokens(root) = %d, want 3", n)
	}
}

func TestRedisStore_costParentInTheSameBatch(t *testing.T) {
	s := newEmbedded(t, correlation.RedisConfig{})
	ctx := testCtx(t)
	root, mid, leaf := uuid.New(), uuid.New(), uuid.New()
	// The batching recorder may write a parent's link together with its child's.
	err := s.Record(ctx,
		correlation.Link{Child: mid, Parents: []uuid.UUID{root}},
		correlation.Link{Child: leaf, Parents: []uuid.UUID{mid}, Cost: &correlation.Cost{TokensUsed: 9}})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s.RootTokens(ctx, root); n != 9 {
		t.Errorf("RootTokens(root) = %d, want 9: the root is found through the parent of the same batch", n)
	}
}

func TestRedisStore_costMalformedHash(t *testing.T) {
	_, c := miniClient(t)
	s := newStore(t, c, correlation.RedisConfig{})
	root := uuid.New()
	c.HSet(testCtx(t), s.CostKey(root), "tokens_used", "many")
	var me *correlation.MalformedError
	if _, err := s.Cost(testCtx(t), root); !errors.As(err, &me) || me.Key != s.CostKey(root) {
		t.Errorf("Cost of a hash with a non-integer = %v, want a MalformedError naming %s", err, s.CostKey(root))
	}
}

// links is a LinkReader over a map, counting its lookups.
type links struct {
	m       map[uuid.UUID]correlation.Link
	lookups int
}

func (l *links) Lookup(_ context.Context, id uuid.UUID) (correlation.Link, error) {
	l.lookups++
	if k, ok := l.m[id]; ok {
		return k, nil
	}
	return correlation.Link{}, correlation.ErrNotFound
}

func TestRootOf(t *testing.T) {
	root, a, b, c, self, x, y := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	graph := map[uuid.UUID]correlation.Link{
		a: {Child: a, Parents: []uuid.UUID{root}},
		b: {Child: b, Parents: []uuid.UUID{a}},
		c: {Child: c, Parents: []uuid.UUID{b}, Metadata: map[string]any{correlation.MetaRoot: root.String()}},
		x: {Child: x, Parents: []uuid.UUID{y}}, // x ↔ y, a cycle
		y: {Child: y, Parents: []uuid.UUID{x}},
	}
	other := uuid.New()
	tests := []struct {
		name        string
		parents     []uuid.UUID
		hint        string
		want        uuid.UUID
		wantLookups int
	}{
		{"the header wins", []uuid.UUID{b}, other.String(), other, 0},
		{"no parents: its own root", nil, "", self, 0},
		{"a header that is not a UUID is ignored", nil, "nope", self, 0},
		{"walks to the event without a link", []uuid.UUID{b}, "", root, 3},
		{"stops at a link naming its root", []uuid.UUID{c}, "", root, 1},
		{"a parent without a link is the root", []uuid.UUID{root, a}, "", root, 1},
		{"a cycle ends", []uuid.UUID{x}, "", y, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &links{m: graph}
			got, err := correlation.RootOf(context.Background(), r, self, tt.parents, tt.hint)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || r.lookups != tt.wantLookups {
				t.Errorf("RootOf = %s after %d lookups, want %s after %d", got, r.lookups, tt.want, tt.wantLookups)
			}
		})
	}
}

func TestRootOf_readError(t *testing.T) {
	_, c := miniClient(t)
	s := newStore(t, c, correlation.RedisConfig{})
	_ = c.Close()
	if _, err := correlation.RootOf(context.Background(), s, uuid.New(), []uuid.UUID{uuid.New()}, ""); err == nil {
		t.Error("RootOf with Redis away: err = nil, want the read error")
	}
}

func TestRedisStore_costSiblingsShareOneWalk(t *testing.T) {
	_, c := miniClient(t)
	s := newStore(t, c, correlation.RedisConfig{})
	ctx := testCtx(t)
	root, prompt := uuid.New(), uuid.New()
	if err := s.Record(ctx, correlation.Link{Child: prompt, Parents: []uuid.UUID{root}}); err != nil {
		t.Fatal(err)
	}
	hook := &roundTrips{}
	c.AddHook(hook)
	var answers []correlation.Link
	for range 5 {
		answers = append(answers, correlation.Link{Child: uuid.New(), Parents: []uuid.UUID{prompt}, Cost: &correlation.Cost{TokensUsed: 2}})
	}
	if err := s.Record(ctx, answers...); err != nil {
		t.Fatal(err)
	}
	// GET prompt (linked to root), GET root (no link), then the pipeline.
	if n := hook.n.Load(); n != 3 {
		t.Errorf("five answers to one prompt took %d round trips, want 3", n)
	}
	if n, _ := s.RootTokens(ctx, root); n != 10 {
		t.Errorf("RootTokens(root) = %d, want 10", n)
	}
}
