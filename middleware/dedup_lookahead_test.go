package middleware_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// countingSeenStore counts which way Dedup asked the store.
type countingSeenStore struct {
	*middleware.RedisDedupStore
	started, asked atomic.Int64
}

func (s *countingSeenStore) Seen(ctx context.Context, key string) (bool, error) {
	s.asked.Add(1)
	return s.RedisDedupStore.Seen(ctx, key)
}

func (s *countingSeenStore) StartSeen(ctx context.Context, key string) func(context.Context) (bool, error) {
	s.started.Add(1)
	return s.RedisDedupStore.StartSeen(ctx, key)
}

// dedupDuplicatesOnPurpose publishes n events, each of them three times
// with the same event id, and a fourth time as a replay, into a service
// with the reliability stack and dedup on store, and checks that each
// handler ran once per event plus once for the replay: the prefetched
// lookups stop every duplicate the middleware's own lookup would.
func dedupDuplicatesOnPurpose(t *testing.T, b *bus.Bus, store middleware.DedupStore, n int) *reliability.Stack {
	t.Helper()
	svc, err := b.NewService("")
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]*relIDs{"first": {}, "second": {}}
	for name, ids := range runs {
		if err := bus.Handle(svc, name, thread.RoutingKeyPrompt, func(_ context.Context, ev bus.Event[thread.Prompt]) error {
			ids.add(ev.Envelope.EventID.String() + ev.Message.Metadata.Get(envelope.MetaReplay))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	stack, err := reliability.Use(context.Background(), b, svc, reliability.Config{
		DedupStore: store, DedupMarkInBackground: true, NoRedelivery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ids []string
	for range n {
		env, err := envelope.New(thread.RoutingKeyPrompt, thread.Prompt{Provider: "anthropic", Prompt: "hello"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, env.EventID.String())
		// The copies follow one another closely, so that some are in
		// flight together and some arrive after the first one's mark.
		for range 3 {
			if err := b.Publish(ctx, env); err != nil {
				t.Fatal(err)
			}
		}
		msg, err := envelope.NewMessage(env)
		if err != nil {
			t.Fatal(err)
		}
		msg.Metadata.Set(envelope.MetaReplay, "r1")
		msg.SetContext(ctx)
		if err := b.Publisher().Publish(thread.RoutingKeyPrompt, msg); err != nil {
			t.Fatal(err)
		}
	}
	want := 2 * 4 * n // two handlers, four copies each
	relEventually(t, 30*time.Second, "every copy handled or skipped", func() bool {
		s := stack.Dedup.Stats()
		return int(s.Processed+s.Duplicates) == want
	})
	for name, got := range runs {
		for _, id := range ids {
			if c := got.count(id); c != 1 {
				t.Errorf("handler %s ran %d times for event %s, want 1", name, c, id)
			}
			if c := got.count(id + "r1"); c != 1 {
				t.Errorf("handler %s ran %d times for the replay of event %s, want 1", name, c, id)
			}
		}
	}
	if s := stack.Dedup.Stats(); s.Processed != uint64(2*2*n) || s.Duplicates != uint64(2*2*n) || s.StoreErrors != 0 {
		t.Errorf("dedup stats = %+v, want %d processed and %d duplicates", s, 2*2*n, 2*2*n)
	}
	return stack
}

func TestDedup_prefetchedLookupsStopDuplicates_embedded(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	store := &countingSeenStore{RedisDedupStore: middleware.NewRedisDedupStore(client, "")}
	dedupDuplicatesOnPurpose(t, relEmbeddedBus(t, "dup_embedded"), store, 50)
	// Every delivery's lookup was sent before the delivery reached Dedup,
	// except those answered by a mark still waiting to be written.
	if started, asked := store.started.Load(), store.asked.Load(); started == 0 || asked != 0 {
		t.Errorf("lookups started ahead %d, asked by the middleware %d: want all ahead", started, asked)
	}
}

func TestDedup_prefetchedLookupsStopDuplicates_rabbit(t *testing.T) {
	r := relNewRabbit(t, slog.New(slog.DiscardHandler), "BB_CONSUMERS=32")
	client := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = client.Close() })
	prefix := "bloodbank:dedup:test:" + uuid.NewString() + ":"
	t.Cleanup(func() {
		keys, _ := client.Keys(context.Background(), prefix+"*").Result()
		for _, k := range keys {
			client.Del(context.Background(), k)
		}
	})
	store := &countingSeenStore{RedisDedupStore: middleware.NewRedisDedupStore(client, prefix)}
	stack := dedupDuplicatesOnPurpose(t, r.bus, store, 200)
	if err := stack.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if store.started.Load() == 0 || store.asked.Load() != 0 {
		t.Errorf("lookups started ahead %d, asked by the middleware %d: want all ahead", store.started.Load(), store.asked.Load())
	}
}
