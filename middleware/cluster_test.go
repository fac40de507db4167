package middleware_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/internal/testcluster"
	"github.com/33god/bloodbank-go/middleware"
)

// Dedup on a Redis Cluster of three masters: the checks go through the
// auto-pipeliner, the background marks through pipelines, and both carry
// keys of many slots at once.
func TestDedup_onRedisCluster(t *testing.T) {
	rc := testcluster.RedisCluster(t)
	client := rc.Client(t)
	if _, ok := client.(*redis.ClusterClient); !ok {
		t.Fatalf("REDIS_URL %s gave a %T, want a *redis.ClusterClient", rc.URL, client)
	}
	store := middleware.NewRedisDedupStore(client, "")
	t.Run("store contract", func(t *testing.T) { dedupStoreContract(t, store, time.Sleep) })

	for _, background := range []bool{false, true} {
		t.Run(fmt.Sprintf("MarkInBackground=%v", background), func(t *testing.T) {
			d := newDedup(t, middleware.DedupConfig{Store: store, Service: "billing", Window: time.Hour,
				Timeout: 5 * time.Second, MarkInBackground: background})
			runs := &relIDs{}
			h := d.Middleware(func(msg *message.Message) ([]*message.Message, error) {
				runs.add(msg.UUID)
				return nil, nil
			})
			key := func(id uuid.UUID) string { return middleware.DefaultDedupKeyPrefix + d.Key("", id.String()) }
			// One id per master, and enough others that each pipeline
			// spans many slots.
			spread := rc.SpreadIDs(t, key)
			ids := make([]string, 0, 200)
			for _, id := range spread {
				ids = append(ids, id.String())
			}
			for len(ids) < cap(ids) {
				ids = append(ids, relNewID())
			}
			deliver := func() {
				var wg sync.WaitGroup
				for _, id := range ids {
					wg.Go(func() {
						if _, err := h(message.NewMessage(id, nil)); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				flushDedup(t, d)
			}
			deliver()
			deliver() // every one a duplicate now
			for _, id := range ids {
				if n := runs.count(id); n != 1 {
					t.Errorf("%s handled %d times, want once", id, n)
				}
			}
			n := uint64(len(ids))
			if s := d.Stats(); s.Processed != n || s.Duplicates != n || s.StoreErrors != 0 {
				t.Errorf("stats %+v, want %d processed, %d duplicates, no store error", s, n, n)
			}
			for i, id := range spread {
				port := testcluster.RedisClusterPorts[i]
				if got, err := rc.Node(t, port).Exists(context.Background(), key(id)).Result(); err != nil || got != 1 {
					t.Errorf("the mark of %s is not on master %d: exists=%d, %v", id, port, got, err)
				}
			}
		})
	}
}
