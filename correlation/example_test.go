package correlation_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/correlation"
)

func Example() {
	// The embedded store: no Redis needed, same code as production.
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	upload := uuid.MustParse("11111111-1111-4111-8111-111111111111")
	ready := uuid.MustParse("22222222-2222-4222-8222-222222222222")
	processed := uuid.MustParse("33333333-3333-4333-8333-333333333333")

	ctx := context.Background()
	// Both links in one round trip.
	err = store.Record(ctx,
		correlation.Link{Child: ready, Parents: []uuid.UUID{upload}},
		correlation.Link{Child: processed, Parents: []uuid.UUID{ready}, Metadata: map[string]any{"reason": "rag ingest"}},
	)
	if err != nil {
		panic(err)
	}

	ancestors, _ := store.Ancestors(ctx, processed, 0)
	fmt.Println("ancestors of processed, nearest first:", ancestors)

	dump, _ := store.Debug(ctx, ready, 0)
	b, _ := json.MarshalIndent(dump, "", "  ")
	fmt.Println(string(b))
	// Output:
	// ancestors of processed, nearest first: [22222222-2222-4222-8222-222222222222 11111111-1111-4111-8111-111111111111]
	// {
	//   "event_id": "22222222-2222-4222-8222-222222222222",
	//   "parents": [
	//     "11111111-1111-4111-8111-111111111111"
	//   ],
	//   "children": [
	//     "33333333-3333-4333-8333-333333333333"
	//   ],
	//   "ancestors": [
	//     "11111111-1111-4111-8111-111111111111"
	//   ],
	//   "descendants": [
	//     "33333333-3333-4333-8333-333333333333"
	//   ],
	//   "metadata": {}
	// }
}

func ExampleRecorder() {
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	// What the bus holds: Record never returns an error and never waits
	// for Redis longer than Timeout; with Batching it does not wait at all.
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{Batching: true})
	if err != nil {
		panic(err)
	}
	parent := uuid.New()
	for range 3 {
		rec.Record(context.Background(), correlation.Link{Child: uuid.New(), Parents: []uuid.UUID{parent}})
	}
	_ = rec.Close(context.Background()) // writes what is still queued

	children, _ := store.Children(context.Background(), parent)
	fmt.Println(len(children), "children; recorded", rec.Recorded(), "failed", rec.Failed())
	// Output: 3 children; recorded 3 failed 0
}
