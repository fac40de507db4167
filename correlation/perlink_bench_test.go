package correlation_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/correlation"
)

// consumeLinks are links as the consume path records them: each child has
// its own parent (the event its handler consumed) and the metadata
// DefaultLinkMetadata writes at the least.
func consumeLinks(n int) []correlation.Link {
	links := make([]correlation.Link, n)
	for i := range links {
		links[i] = correlation.Link{
			Child: uuid.New(), Parents: []uuid.UUID{uuid.New()},
			Metadata: map[string]any{"event_type": "agent.thread.response"},
		}
	}
	return links
}

// perLink reports the heap allocated per link, which B/op and allocs/op
// give per call; the runtime counts what every goroutine allocates, the
// go-redis and Recorder ones included.
func perLink(b *testing.B, links int, run func()) {
	b.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
	runtime.ReadMemStats(&after)
	n := float64(b.N * links)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/link")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/link")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/link")
}

// BenchmarkRecord_perLink is RedisStore.Record on the real Redis with the
// links of the consume path, reported per link.
func BenchmarkRecord_perLink(b *testing.B) {
	c := realClient(b)
	s := newStore(b, c, correlation.RedisConfig{KeyPrefix: isolatedPrefix(b, c)})
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("links=%d", n), func(b *testing.B) {
			links := consumeLinks(n)
			ctx := context.Background()
			perLink(b, n, func() {
				if err := s.Record(ctx, links...); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkRecorder_perLink is one link per Record through a batching
// Recorder onto the real Redis, flushed every 256 links so none is shed:
// what the consume path pays per recorded link.
func BenchmarkRecorder_perLink(b *testing.B) {
	c := realClient(b)
	s := newStore(b, c, correlation.RedisConfig{KeyPrefix: isolatedPrefix(b, c)})
	benchRecorderPerLink(b, s)
}

func benchRecorderPerLink(b *testing.B, s correlation.Writer) {
	r, err := correlation.NewRecorder(s, correlation.RecorderConfig{Batching: true})
	if err != nil {
		b.Fatal(err)
	}
	links := consumeLinks(256)
	ctx := context.Background()
	i := 0
	perLink(b, 1, func() {
		r.Record(ctx, links[i%len(links)])
		if i++; i%256 == 0 {
			if err := r.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := r.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if r.Failed() > 0 {
		b.Errorf("%d of %d links failed", r.Failed(), r.Failed()+r.Recorded())
	}
}

// BenchmarkRecorder_perLinkNoRedis is BenchmarkRecorder_perLink with a
// store whose pipelines never reach a server: the client side alone.
func BenchmarkRecorder_perLinkNoRedis(b *testing.B) {
	c := redis.NewClient(&redis.Options{Addr: closedPort(b)})
	b.Cleanup(func() { _ = c.Close() })
	c.AddHook(discardPipelines{})
	benchRecorderPerLink(b, newStore(b, c, correlation.RedisConfig{}))
}

// discardPipelines answers every pipeline without sending it.
type discardPipelines struct{}

func (discardPipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (discardPipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (discardPipelines) ProcessPipelineHook(redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(context.Context, []redis.Cmder) error { return nil }
}
