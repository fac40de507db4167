package correlation_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
)

// benchTargets are the Redis servers a benchmark runs against: the embedded
// miniredis always, the real Redis when reachable.
func benchTargets(b *testing.B, fn func(b *testing.B, c redis.UniversalClient, prefix string)) {
	b.Run("embedded", func(b *testing.B) {
		_, c := miniClient(b)
		fn(b, c, "")
	})
	b.Run("redis", func(b *testing.B) {
		c := realClient(b)
		fn(b, c, isolatedPrefix(b, c))
	})
}

func benchLinks(n int) []correlation.Link {
	parent := uuid.New()
	links := make([]correlation.Link, n)
	for i := range links {
		links[i] = correlation.Link{Child: uuid.New(), Parents: []uuid.UUID{parent}, Metadata: map[string]any{"i": i}}
	}
	return links
}

// BenchmarkRecord_Pipelined is Record: every link of the call in one round
// trip. ns/op is per call; see links/s for the rate.
func BenchmarkRecord_Pipelined(b *testing.B) {
	benchTargets(b, func(b *testing.B, c redis.UniversalClient, prefix string) {
		s := newStore(b, c, correlation.RedisConfig{KeyPrefix: prefix, TTL: time.Minute})
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("links=%d", n), func(b *testing.B) {
				links := benchLinks(n)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if err := s.Record(ctx, links...); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "links/s")
			})
		}
	})
}

// BenchmarkRecord_OneCommandPerRoundTrip is the baseline: the same keys and
// values written one command at a time (SET, SADD, EXPIRE per link), as a
// client without pipelining would.
func BenchmarkRecord_OneCommandPerRoundTrip(b *testing.B) {
	benchTargets(b, func(b *testing.B, c redis.UniversalClient, prefix string) {
		if prefix == "" {
			prefix = correlation.DefaultKeyPrefix
		}
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("links=%d", n), func(b *testing.B) {
				links := benchLinks(n)
				ctx := context.Background()
				ttl := time.Minute
				b.ReportAllocs()
				for b.Loop() {
					for _, l := range links {
						v := fmt.Sprintf(`{"parent_event_ids":[%q],"created_at":%q,"metadata":{"i":%d}}`,
							l.Parents[0], envelope.FormatTimestamp(time.Now()), l.Metadata["i"])
						if err := c.Set(ctx, prefix+"forward:"+l.Child.String(), v, ttl).Err(); err != nil {
							b.Fatal(err)
						}
						rev := prefix + "reverse:" + l.Parents[0].String()
						if err := c.SAdd(ctx, rev, l.Child.String()).Err(); err != nil {
							b.Fatal(err)
						}
						if err := c.Expire(ctx, rev, ttl).Err(); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "links/s")
			})
		}
	})
}

// BenchmarkRecorder compares what a publishing goroutine pays per link:
// waiting for its own round trip (direct) or only queueing (batching).
func BenchmarkRecorder(b *testing.B) {
	benchTargets(b, func(b *testing.B, c redis.UniversalClient, prefix string) {
		s := newStore(b, c, correlation.RedisConfig{KeyPrefix: prefix, TTL: time.Minute})
		for _, batching := range []bool{false, true} {
			b.Run(fmt.Sprintf("batching=%v", batching), func(b *testing.B) {
				r, err := correlation.NewRecorder(s, correlation.RecorderConfig{Batching: batching, QueueSize: 1 << 16})
				if err != nil {
					b.Fatal(err)
				}
				parent := uuid.New()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						r.Record(context.Background(), correlation.Link{Child: uuid.New(), Parents: []uuid.UUID{parent}})
					}
				})
				if err := r.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(r.Recorded())/b.Elapsed().Seconds(), "links/s")
				if r.Failed() > 0 {
					b.Logf("failed: %d of %d", r.Failed(), r.Failed()+r.Recorded())
				}
			})
		}
	})
}
