package correlation_test

import (
	"reflect"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/correlation/correlationtest"
	"github.com/33god/bloodbank-go/internal/testcluster"
)

// The store on a Redis Cluster of three masters, in the Python layout
// (default prefix, no hash tags): the keys of one link live on different
// masters, so a write is a pipeline the cluster client splits per node and
// a query is a walk whose levels span nodes. Both must give what one Redis
// gives.
func TestRedisStore_onRedisCluster(t *testing.T) {
	rc := testcluster.RedisCluster(t)
	client := rc.Client(t)
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("REDIS_URL %s gave a %T, want a *redis.ClusterClient", rc.URL, client)
	}
	store := newStore(t, client, correlation.RedisConfig{})

	t.Run("contract", func(t *testing.T) {
		correlationtest.Run(t, func(*testing.T) correlation.Store { return store })
	})

	t.Run("keys on three masters", func(t *testing.T) {
		ctx := testCtx(t)
		root := uuid.New()
		spread := rc.SpreadIDs(t, store.ForwardKey)
		a, b, c := spread[0], spread[1], spread[2]
		links := []correlation.Link{
			{Child: a, Parents: []uuid.UUID{root}, Metadata: map[string]any{"handler": "a"}},
			{Child: b, Parents: []uuid.UUID{root}},
			{Child: c, Parents: []uuid.UUID{b, a}},
		}
		// One Record: three SETs and three SADD+EXPIRE in one pipeline.
		if err := store.Record(ctx, links...); err != nil {
			t.Fatalf("Record across slots: %v", err)
		}
		slots := map[int]bool{}
		masters := map[int]bool{}
		for _, key := range []string{store.ForwardKey(a), store.ForwardKey(b), store.ForwardKey(c),
			store.ReverseKey(root), store.ReverseKey(a), store.ReverseKey(b)} {
			slot, port := rc.Slot(t, key)
			slots[slot], masters[port] = true, true
			// The node that serves the slot holds the key itself.
			if n, err := rc.Node(t, port).Exists(ctx, key).Result(); err != nil || n != 1 {
				t.Errorf("%s (slot %d) is not on the master %d: exists=%d, %v", key, slot, port, n, err)
			}
		}
		if len(slots) != 6 || len(masters) != 3 {
			t.Fatalf("the six keys of the graph are in %d slots on %d masters, want 6 slots on 3", len(slots), len(masters))
		}

		// The same graph on one Redis answers every query the same way.
		single := newEmbedded(t, correlation.RedisConfig{})
		if err := single.Record(ctx, links...); err != nil {
			t.Fatal(err)
		}
		for _, id := range []uuid.UUID{root, a, b, c} {
			for _, q := range []struct {
				name string
				run  func(correlation.Store) (any, error)
			}{
				{"Parents", func(s correlation.Store) (any, error) { return s.Parents(ctx, id) }},
				{"Children", func(s correlation.Store) (any, error) { return s.Children(ctx, id) }},
				{"Ancestors", func(s correlation.Store) (any, error) { return s.Ancestors(ctx, id, 0) }},
				{"Descendants", func(s correlation.Store) (any, error) { return s.Descendants(ctx, id, 0) }},
				{"Metadata", func(s correlation.Store) (any, error) { return s.Metadata(ctx, id) }},
				{"Debug", func(s correlation.Store) (any, error) { return s.Debug(ctx, id, 0) }},
				{"chain to ancestors", func(s correlation.Store) (any, error) {
					return correlation.CorrelationChain(ctx, s, id, correlation.TowardAncestors, 0)
				}},
				{"chain to descendants", func(s correlation.Store) (any, error) {
					return correlation.CorrelationChain(ctx, s, id, correlation.TowardDescendants, 0)
				}},
			} {
				got, err := q.run(store)
				if err != nil {
					t.Fatalf("%s(%s) on the cluster: %v", q.name, id, err)
				}
				want, err := q.run(single)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s(%s) on the cluster = %v, on one Redis = %v", q.name, id, got, want)
				}
			}
		}
		if got, _ := store.Descendants(ctx, root, 0); len(got) != 3 {
			t.Errorf("descendants of the root = %v, want a, b and c", got)
		}
		if got, _ := store.Ancestors(ctx, c, 0); len(got) != 3 || got[2] != root {
			t.Errorf("ancestors of c = %v, want a and b, then the root", got)
		}
	})
}
