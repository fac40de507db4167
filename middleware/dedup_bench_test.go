package middleware_test

import (
	"context"
	"runtime"
	"sync/atomic"
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
// real Redis: an EXISTS before the handler and a SET NX after it, from 16
// goroutines at once as a service's consumers make them.
// cpu-µs/msg is this process's CPU per message (Redis's own is not in it);
// trips/msg is the round trips to Redis per message (a pipeline is one),
// cmds/pipeline the commands of an average pipeline.
func BenchmarkDedup_redis(b *testing.B) { benchDedupRedis(b, benchParallelism, false) }

// BenchmarkDedup_redis256 is BenchmarkDedup_redis with 256 deliveries in
// flight, a consumer's default prefetch.
func BenchmarkDedup_redis256(b *testing.B) { benchDedupRedis(b, 256/benchProcs(), false) }

// BenchmarkDedup_redisSerial is one delivery at a time: the latency of the
// two round trips alone.
func BenchmarkDedup_redisSerial(b *testing.B) { benchDedupRedis(b, 0, false) }

// benchDedupRedis runs the middleware from parallelism × GOMAXPROCS
// goroutines, or from the benchmark's own goroutine when parallelism is 0,
// with DedupConfig.MarkInBackground as given; the time and CPU of the marks
// written in the background are counted.
func benchDedupRedis(b *testing.B, parallelism int, inBackground bool) {
	client := redis.NewClient(&redis.Options{Addr: testenv.Redis(b)})
	b.Cleanup(func() { _ = client.Close() }) // cleanups run last first: after the keys go
	prefix := "bbbench:dedup:" + uuid.NewString()[:8] + ":"
	b.Cleanup(func() {
		ctx := context.Background()
		var keys []string
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if keys = append(keys, iter.Val()); len(keys) == 1000 {
				client.Unlink(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			client.Unlink(ctx, keys...)
		}
	})
	trips := &tripCounter{}
	client.AddHook(trips)
	d, err := middleware.NewDedup(middleware.DedupConfig{Store: middleware.NewRedisDedupStore(client, prefix), Service: "bench", Window: time.Minute,
		MarkInBackground: inBackground})
	if err != nil {
		b.Fatal(err)
	}
	h := d.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	start := benchCPUTime()
	trips.reset()
	b.ResetTimer()
	if parallelism == 0 {
		for range b.N {
			if _, err := h(message.NewMessage(uuid.NewString(), nil)); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(parallelism) // × GOMAXPROCS goroutines
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := h(message.NewMessage(uuid.NewString(), nil)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	if err := d.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(benchCPUTime()-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/msg")
	commands, pipelines, pipelined := trips.commands.Load(), trips.pipelines.Load(), trips.pipelined.Load()
	b.ReportMetric(float64(commands+pipelines)/float64(b.N), "trips/msg")
	if pipelines > 0 {
		b.ReportMetric(float64(pipelined)/float64(pipelines), "cmds/pipeline")
	}
	if s := d.Stats(); s.StoreErrors > 0 {
		b.Fatalf("%d store errors", s.StoreErrors)
	}
}

// tripCounter is a go-redis hook counting round trips: commands, pipelines
// with the commands in them, and the pipelines that carried marks (SET)
// with the marks in them.
type tripCounter struct{ commands, pipelines, pipelined, markPipelines, marks atomic.Int64 }

func (c *tripCounter) reset() {
	c.commands.Store(0)
	c.pipelines.Store(0)
	c.pipelined.Store(0)
	c.markPipelines.Store(0)
	c.marks.Store(0)
}

func (*tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.commands.Add(1)
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if name := cmds[0].Name(); name != "exists" && name != "set" {
			return next(ctx, cmds) // the connection's HELLO, say
		}
		c.pipelines.Add(1)
		c.pipelined.Add(int64(len(cmds)))
		marks := 0
		for _, cmd := range cmds {
			if cmd.Name() == "set" {
				marks++
			}
		}
		if marks > 0 {
			c.markPipelines.Add(1)
			c.marks.Add(int64(marks))
		}
		return next(ctx, cmds)
	}
}

// benchParallelism × GOMAXPROCS goroutines call Dedup at once: 8 × 2 = 16.
var benchParallelism = 8

func benchProcs() int { return max(1, runtime.GOMAXPROCS(0)) }

// BenchmarkDedup_lookahead is the time from a delivery's arrival to the
// start of its handler, one delivery at a time on the real Redis, when the
// lookup starts on arrival (Dedup.Prefetch) and the delivery then crosses
// two goroutine hand-offs on its way to Dedup, as it does in a service (the
// router's goroutine, the warm pool's).
func BenchmarkDedup_lookahead(b *testing.B) { benchDedupLookahead(b, true) }

// BenchmarkDedup_lookaheadOff is BenchmarkDedup_lookahead with the lookup
// sent by Dedup itself, after the hand-offs.
func BenchmarkDedup_lookaheadOff(b *testing.B) { benchDedupLookahead(b, false) }

func benchDedupLookahead(b *testing.B, ahead bool) {
	client := redis.NewClient(&redis.Options{Addr: testenv.Redis(b)})
	b.Cleanup(func() { _ = client.Close() })
	prefix := "bbbench:dedup:" + uuid.NewString()[:8] + ":"
	d, err := middleware.NewDedup(middleware.DedupConfig{Store: middleware.NewRedisDedupStore(client, prefix), Service: "bench",
		Window: time.Second, MarkInBackground: true})
	if err != nil {
		b.Fatal(err)
	}
	started := make(chan struct{})
	h := d.Middleware(func(*message.Message) ([]*message.Message, error) { started <- struct{}{}; return nil, nil })
	hop1, hop2 := make(chan *message.Message), make(chan *message.Message)
	go func() {
		for m := range hop1 {
			hop2 <- m
		}
		close(hop2)
	}()
	go func() {
		for m := range hop2 {
			_, _ = h(m)
		}
	}()
	b.ResetTimer()
	for range b.N {
		msg := message.NewMessage(uuid.NewString(), nil)
		if ahead {
			d.Prefetch(msg, "")
		}
		hop1 <- msg
		<-started
	}
	b.StopTimer()
	close(hop1)
	_ = d.Flush(context.Background())
}
