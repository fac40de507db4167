package middleware_test

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/internal/testcluster"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// timedWriter passes writes to a store and notes when they succeed or fail.
type timedWriter struct {
	correlation.Writer
	mu          sync.Mutex
	ok          []time.Time // one per successful write
	failedLinks int
	slowestFail time.Duration
	written     map[uuid.UUID]time.Time // child → when its write succeeded
}

func (w *timedWriter) Record(ctx context.Context, links ...correlation.Link) error {
	start := time.Now()
	err := w.Writer.Record(ctx, links...)
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failedLinks += len(links)
		w.slowestFail = max(w.slowestFail, now.Sub(start))
		return err
	}
	w.ok = append(w.ok, now)
	for _, l := range links {
		w.written[l.Child] = now
	}
	return nil
}

// firstOKAfter is when the first write after t succeeded (zero: none).
func (w *timedWriter) firstOKAfter(t time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ok := range w.ok {
		if ok.After(t) {
			return ok
		}
	}
	return time.Time{}
}

// childOf is the child a test handler links to the event it handled.
func childOf(event uuid.UUID) uuid.UUID { return uuid.NewSHA1(uuid.NameSpaceOID, event[:]) }

// The Sentinel master gets SIGKILL while events stream through a service
// with dedup and correlation recording on REDIS_URL in the Sentinel form,
// with the settings the command processor uses. Processing never stops;
// correlation writes and dedup resume on the promoted replica within the
// failover time; what failed meanwhile is counted, not fatal.
func TestDisruptive_redisSentinelFailover(t *testing.T) {
	skipUnlessDisruptive(t)
	rs := testcluster.RedisSentinel(t)
	redisLog := &countingRedisLog{}
	redis.SetLogger(redisLog)
	client := rs.Client(t)
	prefix := "bloodbank:test:" + uuid.NewString() + ":"
	store, err := correlation.NewRedisStore(client, correlation.RedisConfig{KeyPrefix: prefix + "correlation:", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	writer := &timedWriter{Writer: store, written: map[uuid.UUID]time.Time{}}
	logs := &relLogs{}
	rec, err := correlation.NewRecorder(writer, correlation.RecorderConfig{Batching: true, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rec.Close(context.Background()) })

	r := relNewRabbit(t, nil, "BB_CONSUMERS=4")
	dedupStore := middleware.NewRedisDedupStore(client, prefix+"dedup:")
	svc, rel := r.newService(reliability.Config{DedupStore: dedupStore, Logger: logs.logger()})
	processed := &relIDs{}
	var mu sync.Mutex
	var handledAt []time.Time
	if err := svc.HandleMessage("link", "stream.#", func(msg *message.Message) error {
		parent, err := uuid.Parse(msg.UUID)
		if err != nil {
			return envelope.Permanent(err)
		}
		rec.Record(msg.Context(), correlation.Link{Child: childOf(parent), Parents: []uuid.UUID{parent}})
		processed.add(msg.UUID)
		mu.Lock()
		handledAt = append(handledAt, time.Now())
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)

	// A steady stream of confirmed publishes, one every 4 ms at most, for
	// 1.5 s before the kill and 6 s after it: longer than a failover.
	const pace, before, after = 4 * time.Millisecond, 1500 * time.Millisecond, 6 * time.Second
	ctx := context.Background()
	var ids []uuid.UUID
	var killedAt time.Time
	promoted := make(chan time.Duration, 1)
	ticker := time.NewTicker(pace)
	defer ticker.Stop()
	start := time.Now()
	for time.Since(start) < before+after {
		<-ticker.C
		if killedAt.IsZero() && time.Since(start) >= before {
			if rec.Failed() != 0 || rel.Stats().Dedup.StoreErrors != 0 {
				t.Fatalf("failures before the kill: correlation %d, dedup %d", rec.Failed(), rel.Stats().Dedup.StoreErrors)
			}
			rs.Kill(t, testcluster.SentinelMasterPort)
			killedAt = time.Now()
			go watchPromotion(killedAt, promoted)
		}
		env, _ := envelope.New("stream.tick", map[string]any{"n": len(ids)})
		if err := r.bus.Publish(ctx, env); err != nil {
			t.Fatalf("publish %d: %v", len(ids), err)
		}
		ids = append(ids, env.EventID)
	}
	published := time.Now()
	relEventually(t, time.Minute, "every event handled", func() bool { return processed.distinct() == len(ids) })
	for _, id := range ids {
		if processed.count(id.String()) == 0 {
			t.Errorf("event %s lost", id)
		}
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// The Sentinels promoted the replica long ago (the stream ran 6 s).
	if m := rs.Master(t); m != testcluster.SentinelReplicaPort {
		t.Fatalf("the Sentinels report master %d, want the replica %d", m, testcluster.SentinelReplicaPort)
	}
	var failover time.Duration
	select {
	case failover = <-promoted:
	case <-time.After(relWait):
		t.Fatal("no Sentinel reported the promotion")
	}
	resumed := writer.firstOKAfter(killedAt)
	if resumed.IsZero() {
		t.Fatal("no correlation write succeeded after the kill")
	}
	// Writes resume when the client learns of the promotion, or one write
	// timeout (1 s, the recorder's default) later: the batch in flight then
	// may be spending its timeout on retries against the dead master.
	writesBack := resumed.Sub(killedAt)
	if bound := failover + time.Second + 500*time.Millisecond; writesBack > bound {
		t.Errorf("correlation writes resumed %s after the kill, want within %s: the Sentinels promoted the replica after %s",
			writesBack.Round(time.Millisecond), bound.Round(time.Millisecond), failover.Round(time.Millisecond))
	}
	mu.Lock()
	slices.SortFunc(handledAt, time.Time.Compare)
	var duringOutage int
	var maxGap time.Duration
	for i, at := range handledAt {
		if at.After(killedAt) && at.Before(resumed) {
			duringOutage++
		}
		if i > 0 {
			maxGap = max(maxGap, at.Sub(handledAt[i-1]))
		}
	}
	drained := max(0, handledAt[len(handledAt)-1].Sub(published))
	mu.Unlock()
	// Every link written after the failover is on the new master; of those
	// the old master acknowledged before it died, a few may not have
	// reached the replica (Redis replicates asynchronously).
	newMaster := rs.Node(t, testcluster.SentinelReplicaPort)
	var lostAcked, checkedAfter int
	writer.mu.Lock()
	written := maps.Clone(writer.written)
	failedLinks, slowestFail := writer.failedLinks, writer.slowestFail
	writer.mu.Unlock()
	for child, at := range written {
		n, err := newMaster.Exists(ctx, store.ForwardKey(child)).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case at.After(resumed) || at.Equal(resumed):
			checkedAfter++
			if n != 1 {
				t.Errorf("link of %s written %s after the kill is not on the new master", child, at.Sub(killedAt))
			}
		case n != 1:
			lostAcked++
		}
	}
	if checkedAfter == 0 {
		t.Error("no link written after the failover to check")
	}
	s := rel.Stats()
	if rec.Failed() == 0 && s.Dedup.StoreErrors == 0 {
		t.Error("nothing failed while the master was gone: the kill did not land mid-stream")
	}
	if rec.Failed() < uint64(failedLinks) || rec.Recorded()+rec.Failed() != uint64(len(ids)) {
		t.Errorf("recorder counts %d written + %d failed, want %d links (%d failed in the store)", rec.Recorded(), rec.Failed(), len(ids), failedLinks)
	}
	if s.Dedup.Processed != uint64(len(ids)) {
		t.Errorf("dedup processed %d, want %d", s.Dedup.Processed, len(ids))
	}
	// Dedup works on the new master: an event handled after the failover
	// is marked there, and its copy is skipped.
	last := ids[len(ids)-1]
	if seen, err := dedupStore.Seen(ctx, r.service+":link:"+last.String()); err != nil || !seen {
		t.Errorf("dedup mark of the last event: %v, %v", seen, err)
	}
	dupsBefore := s.Dedup.Duplicates
	again, _ := envelope.New("stream.tick", map[string]any{"n": "again"})
	again.EventID = last
	if err := r.bus.Publish(ctx, again); err != nil {
		t.Fatal(err)
	}
	relEventually(t, relWait, "the copy of the last event skipped", func() bool { return rel.Stats().Dedup.Duplicates == dupsBefore+1 })
	t.Logf("%d events in %s (kill at %s): all handled, longest pause in handling %s, last handled %s after publishing ended",
		len(ids), (before + after), before, maxGap.Round(time.Millisecond), drained.Round(time.Millisecond))
	t.Logf("the Sentinels promoted the replica %s after the SIGKILL; %d events handled meanwhile", failover.Round(time.Millisecond), duringOutage)
	t.Logf("correlation writes back %s after the SIGKILL (a failed write took up to %s); %d links not written (counted by the recorder), %d acknowledged by the old master and lost with it, %d written after the failover all on the new master",
		writesBack.Round(time.Millisecond), slowestFail.Round(time.Millisecond), rec.Failed(), lostAcked, checkedAfter)
	t.Logf("dedup: %d store errors (failed open), %d go-redis log lines", s.Dedup.StoreErrors, redisLog.n.Load())
}

// watchPromotion reports how long after killedAt the first Sentinel named
// the replica as master.
func watchPromotion(killedAt time.Time, promoted chan<- time.Duration) {
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(testcluster.SentinelPorts[0]), MaxRetries: -1})
	defer sentinel.Close()
	want := strconv.Itoa(testcluster.SentinelReplicaPort)
	for time.Since(killedAt) < time.Minute {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addr, err := sentinel.GetMasterAddrByName(ctx, testcluster.SentinelMasterName).Result()
		cancel()
		if err == nil && len(addr) == 2 && addr[1] == want {
			promoted <- time.Since(killedAt)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
