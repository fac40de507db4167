package middleware_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
)

func benchCPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDedup_redis is what deduplication costs each delivery on the
// real Redis: an EXISTS before the handler and a SET NX after it, two round
// trips, from 16 goroutines at once as a service's consumers make them.
// cpu-µs/msg is this process's CPU per message (Redis's own is not in it).
func BenchmarkDedup_redis(b *testing.B) {
	client := redis.NewClient(&redis.Options{Addr: testenv.Redis(b)})
	b.Cleanup(func() { _ = client.Close() }) // cleanups run last first: after the keys go
	prefix := "bbbench:dedup:" + uuid.NewString()[:8] + ":"
	b.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Unlink(ctx, iter.Val())
		}
	})
	d, err := middleware.NewDedup(middleware.DedupConfig{Store: middleware.NewRedisDedupStore(client, prefix), Service: "bench", Window: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	h := d.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	b.SetParallelism(benchParallelism) // × GOMAXPROCS goroutines
	start := benchCPUTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h(message.NewMessage(uuid.NewString(), nil)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(benchCPUTime()-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/msg")
	if s := d.Stats(); s.StoreErrors > 0 {
		b.Fatalf("%d store errors", s.StoreErrors)
	}
}

// benchParallelism × GOMAXPROCS goroutines call Dedup at once: 8 × 2 = 16.
var benchParallelism = 8
