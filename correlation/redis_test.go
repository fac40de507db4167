package correlation_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/correlation/correlationtest"
)

func TestEmbedded_contract(t *testing.T) {
	correlationtest.Run(t, func(t *testing.T) correlation.Store {
		return newEmbedded(t, correlation.RedisConfig{})
	})
}

func TestRedisStore_contract(t *testing.T) {
	c := realClient(t)
	correlationtest.Run(t, func(t *testing.T) correlation.Store {
		return newStore(t, c, correlation.RedisConfig{KeyPrefix: isolatedPrefix(t, c)})
	})
}

// stores runs fn against the embedded server and, when reachable, the real
// Redis, each with a client the test can inspect.
func stores(t *testing.T, fn func(t *testing.T, c redis.UniversalClient, prefix string)) {
	t.Run("embedded", func(t *testing.T) {
		_, c := miniClient(t)
		fn(t, c, "")
	})
	t.Run("redis", func(t *testing.T) {
		c := realClient(t)
		fn(t, c, isolatedPrefix(t, c))
	})
}

func TestRedisStore_recordWritesThePythonLayout(t *testing.T) {
	stores(t, func(t *testing.T, c redis.UniversalClient, prefix string) {
		if prefix == "" {
			prefix = correlation.DefaultKeyPrefix
		}
		s := newStore(t, c, correlation.RedisConfig{KeyPrefix: prefix})
		p1, p2, child := uuid.New(), uuid.New(), uuid.New()
		created := time.Date(2026, 1, 29, 10, 0, 0, 123456789, time.UTC)
		err := s.Record(testCtx(t), correlation.Link{
			Child: child, Parents: []uuid.UUID{p1, p2},
			Metadata:  map[string]any{"reason": "retry", "attempt": 2},
			CreatedAt: created,
		})
		if err != nil {
			t.Fatalf("Record: %v", err)
		}

		// Read back as the Python tracker does: GET + json.loads, SMEMBERS.
		fwdKey := prefix + "forward:" + child.String()
		if s.ForwardKey(child) != fwdKey {
			t.Errorf("ForwardKey = %q, want %q", s.ForwardKey(child), fwdKey)
		}
		raw, err := c.Get(testCtx(t), fwdKey).Result()
		if err != nil {
			t.Fatalf("GET %s: %v", fwdKey, err)
		}
		var fwd map[string]any
		if err := json.Unmarshal([]byte(raw), &fwd); err != nil {
			t.Fatalf("forward value %q is not JSON: %v", raw, err)
		}
		want := map[string]any{
			"parent_event_ids": []any{p1.String(), p2.String()},
			"created_at":       "2026-01-29T10:00:00.123456Z",
			"metadata":         map[string]any{"reason": "retry", "attempt": float64(2)},
		}
		if !reflect.DeepEqual(fwd, want) {
			t.Errorf("forward value = %s\nwant %v", raw, want)
		}
		// Keys in the order Python writes them, so a byte comparison of
		// values from both languages is meaningful.
		if i, j, k := strings.Index(raw, "parent_event_ids"), strings.Index(raw, "created_at"), strings.Index(raw, "metadata"); !(i < j && j < k) {
			t.Errorf("forward keys out of Python's order: %s", raw)
		}
		for _, p := range []uuid.UUID{p1, p2} {
			revKey := prefix + "reverse:" + p.String()
			if typ := c.Type(testCtx(t), revKey).Val(); typ != "set" {
				t.Errorf("TYPE %s = %q, want set", revKey, typ)
			}
			members := c.SMembers(testCtx(t), revKey).Val()
			if !reflect.DeepEqual(members, []string{child.String()}) {
				t.Errorf("SMEMBERS %s = %v, want [%s]", revKey, members, child)
			}
		}

		// No metadata is stored as {} (Python: metadata or {}).
		bare := uuid.New()
		if err := s.Record(testCtx(t), correlation.Link{Child: bare, Parents: []uuid.UUID{p1}}); err != nil {
			t.Fatal(err)
		}
		raw = c.Get(testCtx(t), prefix+"forward:"+bare.String()).Val()
		if !strings.HasSuffix(raw, `"metadata":{}}`) {
			t.Errorf("forward value without metadata = %s, want metadata {}", raw)
		}
	})
}

func TestRedisStore_readsWhatPythonWrote(t *testing.T) {
	stores(t, func(t *testing.T, c redis.UniversalClient, _ string) {
		// The real Python prefix on the real Redis: the ids are fresh, and
		// exactly these keys are deleted afterwards.
		prefix := correlation.DefaultKeyPrefix
		s := newStore(t, c, correlation.RedisConfig{})
		root, mid, leaf, other := uuid.New(), uuid.New(), uuid.New(), uuid.New()
		keys := []string{
			prefix + "forward:" + mid.String(), prefix + "forward:" + leaf.String(),
			prefix + "reverse:" + root.String(), prefix + "reverse:" + mid.String(), prefix + "reverse:" + other.String(),
		}
		t.Cleanup(func() { c.Del(testCtx(t), keys...) })

		// What the deployed tracker writes (orjson: compact, aware
		// isoformat) and what json.dumps writes (spaced, naive timestamp).
		orjson := fmt.Sprintf(`{"parent_event_ids":[%q],"created_at":"2026-01-29T10:00:00.123456+00:00","metadata":{}}`, root)
		jsonDumps := fmt.Sprintf(`{"parent_event_ids": [%q, %q], "created_at": "2026-01-29T10:00:00.123456", "metadata": {"reason": "ok", "n": 12345678901234567890}}`, mid, other)
		ctx := testCtx(t)
		ttl := 30 * 24 * time.Hour
		pipe := c.TxPipeline() // Python: pipeline(transaction=True), SETEX, SADD, EXPIRE
		pipe.SetEx(ctx, keys[0], orjson, ttl)
		pipe.SAdd(ctx, keys[2], mid.String())
		pipe.Expire(ctx, keys[2], ttl)
		pipe.SetEx(ctx, keys[1], jsonDumps, ttl)
		pipe.SAdd(ctx, keys[3], leaf.String())
		pipe.Expire(ctx, keys[3], ttl)
		pipe.SAdd(ctx, keys[4], leaf.String())
		pipe.Expire(ctx, keys[4], ttl)
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("writing the Python layout: %v", err)
		}

		if got, _ := s.Parents(ctx, leaf); !reflect.DeepEqual(got, []uuid.UUID{mid, other}) {
			t.Errorf("Parents(leaf) = %v, want [%s %s]", got, mid, other)
		}
		if got, _ := s.Children(ctx, root); !reflect.DeepEqual(got, []uuid.UUID{mid}) {
			t.Errorf("Children(root) = %v, want [%s]", got, mid)
		}
		anc, err := s.Ancestors(ctx, leaf, 0)
		if err != nil {
			t.Fatalf("Ancestors: %v", err)
		}
		wantAnc := append(sortedIDs(mid, other), root)
		if !reflect.DeepEqual(anc, wantAnc) {
			t.Errorf("Ancestors(leaf) = %v, want %v", anc, wantAnc)
		}
		l, err := s.Lookup(ctx, mid)
		if err != nil {
			t.Fatalf("Lookup(mid): %v", err)
		}
		if want := time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC); !l.CreatedAt.Equal(want) {
			t.Errorf("CreatedAt of an aware Python timestamp = %s, want %s", l.CreatedAt, want)
		}
		l, err = s.Lookup(ctx, leaf)
		if err != nil {
			t.Fatalf("Lookup(leaf): %v", err)
		}
		if want := time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC); !l.CreatedAt.Equal(want) {
			t.Errorf("CreatedAt of a naive Python timestamp = %s, want %s (UTC)", l.CreatedAt, want)
		}
		// A Python int beyond float64 precision survives.
		if n := l.Metadata["n"]; n != json.Number("12345678901234567890") {
			t.Errorf("metadata n = %#v, want json.Number 12345678901234567890", n)
		}
		d, err := s.Debug(ctx, mid, 0)
		if err != nil {
			t.Fatalf("Debug: %v", err)
		}
		b, _ := json.Marshal(d)
		want := fmt.Sprintf(`{"event_id":%q,"parents":[%q],"children":[%q],"ancestors":[%q],"descendants":[%q],"metadata":{}}`, mid, root, leaf, root, leaf)
		if string(b) != want {
			t.Errorf("Debug(mid) = %s\nwant %s", b, want)
		}
	})
}

func TestRedisStore_malformedValues(t *testing.T) {
	srv, c := miniClient(t)
	s := newStore(t, c, correlation.RedisConfig{})
	id := uuid.New()
	key := s.ForwardKey(id)
	for _, v := range []string{
		`not json`,
		`[]`,
		`null`,
		`{"created_at": "2026-01-29T10:00:00"}`,
		`{"parent_event_ids": ["not-a-uuid"]}`,
		`{"parent_event_ids": [1]}`,
		`{"parent_event_ids": [], "metadata": [1]}`,
	} {
		if err := srv.Set(key, v); err != nil {
			t.Fatal(err)
		}
		_, err := s.Parents(testCtx(t), id)
		var me *correlation.MalformedError
		if !errors.As(err, &me) || me.Key != key {
			t.Errorf("Parents with forward %s: err = %v, want *MalformedError for %s", v, err, key)
		}
		if _, err := s.Ancestors(testCtx(t), id, 0); !errors.As(err, &me) {
			t.Errorf("Ancestors with forward %s: err = %v, want *MalformedError", v, err)
		}
	}
	// An unreadable created_at hides nothing else.
	p := uuid.New()
	if err := srv.Set(key, fmt.Sprintf(`{"parent_event_ids": [%q], "created_at": "yesterday"}`, p)); err != nil {
		t.Fatal(err)
	}
	l, err := s.Lookup(testCtx(t), id)
	if err != nil || !l.CreatedAt.IsZero() || !reflect.DeepEqual(l.Parents, []uuid.UUID{p}) {
		t.Errorf("Lookup = %+v, %v; want the parent and a zero CreatedAt", l, err)
	}
	if md, err := s.Metadata(testCtx(t), id); err != nil || md != nil {
		t.Errorf("Metadata with no metadata key = %v, %v; want nil (Python: .get gives None)", md, err)
	}
	if _, err := srv.SAdd(s.ReverseKey(id), "garbage"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Children(testCtx(t), id); !errors.As(err, new(*correlation.MalformedError)) {
		t.Errorf("Children with a non-UUID member: err = %v, want *MalformedError", err)
	}
}

func TestRedisStore_ttlSetAndRefreshed(t *testing.T) {
	stores(t, func(t *testing.T, c redis.UniversalClient, prefix string) {
		const ttl = 2 * time.Hour
		s := newStore(t, c, correlation.RedisConfig{KeyPrefix: prefix, TTL: ttl})
		parent, first, second := uuid.New(), uuid.New(), uuid.New()
		ctx := testCtx(t)
		if err := s.Record(ctx, correlation.Link{Child: first, Parents: []uuid.UUID{parent}}); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{s.ForwardKey(first), s.ReverseKey(parent)} {
			if got := c.TTL(ctx, key).Val(); got < ttl-5*time.Second || got > ttl {
				t.Errorf("TTL %s = %s, want %s", key, got, ttl)
			}
		}
		// Age the set, then add a second child: the set's TTL starts over.
		if err := c.Expire(ctx, s.ReverseKey(parent), time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.Record(ctx, correlation.Link{Child: second, Parents: []uuid.UUID{parent}}); err != nil {
			t.Fatal(err)
		}
		if got := c.TTL(ctx, s.ReverseKey(parent)).Val(); got < ttl-5*time.Second {
			t.Errorf("TTL of the reverse set after a second child = %s, want refreshed to %s", got, ttl)
		}
	})
}

func TestEmbedded_keysExpire(t *testing.T) {
	e := newEmbedded(t, correlation.RedisConfig{TTL: time.Hour})
	parent, child := uuid.New(), uuid.New()
	if err := e.Record(testCtx(t), correlation.Link{Child: child, Parents: []uuid.UUID{parent}}); err != nil {
		t.Fatal(err)
	}
	srv := e.Server()
	if got := srv.TTL(e.ForwardKey(child)); got != time.Hour {
		t.Errorf("TTL forward = %s, want 1h", got)
	}
	srv.FastForward(59 * time.Minute)
	if got, _ := e.Children(testCtx(t), parent); len(got) != 1 {
		t.Fatalf("Children before the TTL = %v, want the child", got)
	}
	srv.FastForward(2 * time.Minute)
	if got, _ := e.Children(testCtx(t), parent); len(got) != 0 {
		t.Errorf("Children after the TTL = %v, want none", got)
	}
	if _, err := e.Lookup(testCtx(t), child); !errors.Is(err, correlation.ErrNotFound) {
		t.Errorf("Lookup after the TTL: err = %v, want ErrNotFound", err)
	}
}

func TestRedisStore_oneRoundTripPerLevel(t *testing.T) {
	stores(t, func(t *testing.T, c redis.UniversalClient, prefix string) {
		hook := &roundTrips{}
		c.AddHook(hook)
		s := newStore(t, c, correlation.RedisConfig{KeyPrefix: prefix})
		ctx := testCtx(t)

		// root → 30 children → 2 grandchildren each → 1 great-grandchild each.
		root := uuid.New()
		var links []correlation.Link
		var leaves []uuid.UUID
		for range 30 {
			kid := uuid.New()
			links = append(links, correlation.Link{Child: kid, Parents: []uuid.UUID{root}})
			for range 2 {
				gk := uuid.New()
				links = append(links, correlation.Link{Child: gk, Parents: []uuid.UUID{kid}})
				ggk := uuid.New()
				links = append(links, correlation.Link{Child: ggk, Parents: []uuid.UUID{gk}})
				leaves = append(leaves, ggk)
			}
		}
		hook.reset()
		if err := s.Record(ctx, links...); err != nil {
			t.Fatal(err)
		}
		if got := hook.n.Load(); got != 1 {
			t.Errorf("Record of %d links took %d round trips, want 1", len(links), got)
		}

		hook.reset()
		desc, err := s.Descendants(ctx, root, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(desc) != 150 {
			t.Fatalf("len(Descendants) = %d, want 150", len(desc))
		}
		// Levels 0..3 are fetched (the last one answers "no children"):
		// 4 round trips for 151 nodes.
		if got := hook.n.Load(); got != 4 {
			t.Errorf("Descendants over 3 levels took %d round trips, want 4 (one per level)", got)
		}

		hook.reset()
		if _, err := s.Descendants(ctx, root, 2); err != nil {
			t.Fatal(err)
		}
		if got := hook.n.Load(); got != 2 {
			t.Errorf("Descendants(maxDepth 2) took %d round trips, want 2", got)
		}

		hook.reset()
		anc, err := s.Ancestors(ctx, leaves[0], 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(anc) != 3 || hook.n.Load() != 4 {
			t.Errorf("Ancestors = %d ids in %d round trips, want 3 in 4", len(anc), hook.n.Load())
		}

		// Debug walks up and down together: max(levels up, levels down)+1.
		hook.reset()
		if _, err := s.Debug(ctx, links[1].Child, 0); err != nil { // a grandchild: 2 up, 1 down
			t.Fatal(err)
		}
		if got := hook.n.Load(); got != 3 {
			t.Errorf("Debug took %d round trips, want 3", got)
		}
	})
}

func TestRedisStore_recordMergesReverseWrites(t *testing.T) {
	_, c := miniClient(t)
	hook := &roundTrips{}
	c.AddHook(hook)
	s := newStore(t, c, correlation.RedisConfig{})
	root := uuid.New()
	var links []correlation.Link
	for range 10 {
		links = append(links, correlation.Link{Child: uuid.New(), Parents: []uuid.UUID{root}})
	}
	if err := s.Record(testCtx(t), links...); err != nil {
		t.Fatal(err)
	}
	// 10 SET + one SADD and one EXPIRE for the shared parent.
	if got := hook.cmds.Load(); got != 12 {
		t.Errorf("Record sent %d commands, want 12", got)
	}
}

func TestRedisStore_writeTimeout(t *testing.T) {
	_, c := miniClient(t)
	s := newStore(t, c, correlation.RedisConfig{WriteTimeout: 100 * time.Millisecond})
	if err := s.Record(testCtx(t), correlation.Link{Child: uuid.New(), Parents: []uuid.UUID{uuid.New()}}); err != nil {
		t.Fatal(err)
	}
	// A server that accepts connections and never answers.
	stall := stallingServer(t)
	c2 := redis.NewClient(&redis.Options{Addr: stall, ContextTimeoutEnabled: true, Protocol: 2, MaxRetries: -1})
	t.Cleanup(func() { _ = c2.Close() })
	s2 := newStore(t, c2, correlation.RedisConfig{WriteTimeout: 100 * time.Millisecond})
	start := time.Now()
	err := s2.Record(testCtx(t), correlation.Link{Child: uuid.New(), Parents: []uuid.UUID{uuid.New()}})
	if err == nil {
		t.Fatal("Record on a stalled server succeeded")
	}
	if took := time.Since(start); took > 600*time.Millisecond {
		t.Errorf("Record on a stalled server took %s, want about the 100ms WriteTimeout", took)
	}
}

func TestRedisConfig_validate(t *testing.T) {
	bad := correlation.RedisConfig{TTL: 500 * time.Millisecond, WriteTimeout: -1, MaxDepth: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, want := range []string{"TTL", "WriteTimeout", "MaxDepth"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not mention %s", err, want)
		}
	}
	if err := (correlation.RedisConfig{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	if _, err := correlation.NewRedisStore(nil, correlation.RedisConfig{}); err == nil {
		t.Error("NewRedisStore(nil) succeeded")
	}
	if got := correlation.TTLFromDays(30); got != correlation.DefaultTTL {
		t.Errorf("TTLFromDays(30) = %s, want %s", got, correlation.DefaultTTL)
	}
}

func sortedIDs(in ...uuid.UUID) []uuid.UUID {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return out
}
