package middleware_test

// Fault tests of the reliability middleware on a real RabbitMQ (and Redis):
// what a service built with UseReliability does with panics, malformed and
// invalid bodies, transient and lasting failures and duplicates. The
// TestDisruptive_* tests stop servers or kill processes; they skip unless
// BB_TEST_DISRUPTIVE=1 (make test runs them alone, after everything else).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// faultRetry gives two in-process attempts a millisecond apart and two
// redeliveries through the test delay queues: six attempts in all.
func faultRetry() middleware.RetryConfig {
	return middleware.RetryConfig{MaxAttempts: 2, MaxRedeliveries: 2, InitialInterval: time.Millisecond,
		MaxInterval: time.Millisecond, NoJitter: true}
}

// waitParked waits until the poison queue holds n messages.
func waitParked(t *testing.T, q *reliability.PoisonQueue, n int) {
	t.Helper()
	relEventually(t, 20*time.Second, fmt.Sprintf("%d messages parked in %s", n, q.Name()), func() bool {
		got, err := q.Count(context.Background())
		return err == nil && got >= n
	})
	if got, _ := q.Count(context.Background()); got != n {
		t.Fatalf("%d messages parked, want %d", got, n)
	}
}

func TestFaults_panickingHandlerIsRetriedThenParked(t *testing.T) {
	r := relNewRabbit(t, nil)
	svc, rel := r.newService(reliability.Config{Retry: faultRetry()})
	var attempts atomic.Int32
	if err := svc.HandleMessage("explode", "orders.#", func(*message.Message) error {
		attempts.Add(1)
		panic(fmt.Sprintf("index out of range [%d]", 7))
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)
	env, _ := envelope.New("orders.created", map[string]any{"id": "o-1"})
	if err := r.bus.Publish(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	q := reliability.NewPoisonQueue(r.bus, r.service)
	waitParked(t, q, 1)
	m, err := q.Show(context.Background(), env.EventID.String())
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != middleware.KindPanic || m.Reason != "panic: index out of range [7]" || m.Attempts != 6 || m.Handler != "explode" ||
		m.RoutingKey != "orders.created" || !m.FirstFailure.Before(m.LastFailure) {
		t.Errorf("parked = kind %q reason %q attempts %d handler %q key %q failures %s..%s", m.Kind, m.Reason, m.Attempts, m.Handler,
			m.RoutingKey, m.FirstFailure, m.LastFailure)
	}
	if !strings.Contains(m.Headers[middleware.HeaderPoisonStack], "faults_test.go") {
		t.Error("the parked panic has no stack pointing at the handler")
	}
	if s := rel.Stats(); attempts.Load() != 6 || s.Retry.Panics != 6 || s.Retry.Redelivered != 2 || s.Poison.Parked != 1 {
		t.Errorf("%d attempts, stats %+v; want 6 panics recovered, 2 redeliveries, 1 parked", attempts.Load(), s)
	}
	if n := r.queueLen(r.raw(), r.serviceQueue()); n != 0 {
		t.Errorf("service queue holds %d messages", n)
	}
}

// Every kind of malformed body, and an invalid payload, published by a
// foreign producer: each is parked at once, byte for byte, with its kind and
// reason; the good message behind them is processed; nothing is left.
func TestFaults_malformedAndInvalidBodiesAreParkedAtOnce(t *testing.T) {
	r := relNewRabbit(t, nil, "BB_CONSUMERS=1")
	svc, rel := r.newService(reliability.Config{Retry: faultRetry()})
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	validation, err := middleware.NewValidation(middleware.ValidationConfig{Validator: reg})
	if err != nil {
		t.Fatal(err)
	}
	svc.Use(validation.Middleware)
	handled := &relIDs{}
	if err := svc.HandleMessage("prompt_log", "agent.thread.#", func(msg *message.Message) error {
		handled.add(msg.UUID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)

	const key = "agent.thread.prompt"
	et, err := reg.LookupKey(key)
	if err != nil {
		t.Fatal(err)
	}
	build := func(payload json.RawMessage) (envelope.Envelope, []byte) {
		env, err := envelope.New(key, payload)
		if err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		return env, body
	}
	mutate := func(body []byte, field string, value any) []byte {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		m[field] = value
		out, _ := json.Marshal(m)
		return out
	}
	_, base := build(et.Example())
	notUTF8 := bytes.Replace(base, []byte(`"manual"`), []byte("\"man\xffual\""), 1)
	invalidPayload := json.RawMessage(`{"provider":42,"prompt":["not","a","string"]}`)
	if err := reg.Validate(key, invalidPayload); err == nil {
		t.Fatal("test setup: the invalid payload is valid")
	}
	invalidEnv, invalidBody := build(invalidPayload)
	cases := []struct {
		name, id, kind, reason string
		body                   []byte
	}{
		{"not JSON", relNewID(), envelope.KindMalformed, "not JSON", []byte("hello, this is not JSON")},
		{"not UTF-8", "", envelope.KindMalformed, "UTF-8", notUTF8},
		{"JSON array", relNewID(), envelope.KindMalformed, "JSON array", []byte(`[{"event_id":"` + relNewID() + `"}]`)},
		{"not an envelope", "", envelope.KindMalformed, "event_id: required", []byte(`{"hello":"world"}`)},
		{"bad event id", relNewID(), envelope.KindMalformed, `event_id: "not-a-uuid" is not a UUID`, mutate(base, "event_id", "not-a-uuid")},
		{"bad timestamp", "", envelope.KindMalformed, `timestamp: invalid timestamp "yesterday at noon"`, mutate(base, "timestamp", "yesterday at noon")},
		{"invalid payload", invalidEnv.EventID.String(), envelope.KindInvalid, "provider", invalidBody},
	}
	conn := r.raw()
	for _, c := range cases {
		r.publishRaw(conn, key, c.body, c.id)
	}
	goodEnv, goodBody := build(et.Example())
	r.publishRaw(conn, key, goodBody, "")

	relEventually(t, 20*time.Second, "the good message behind the bad ones handled", func() bool {
		return handled.count(goodEnv.EventID.String()) == 1
	})
	q := reliability.NewPoisonQueue(r.bus, r.service)
	waitParked(t, q, len(cases))
	parked, err := q.List(context.Background(), reliability.PoisonFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		m := parked[i] // one consumer: parked in the order published
		if !bytes.Equal(m.Body, c.body) {
			t.Errorf("%s: parked body %q, want the original %q", c.name, m.Body, c.body)
			continue
		}
		if c.id != "" && m.EventID != c.id {
			t.Errorf("%s: parked id %s, want the message id %s", c.name, m.EventID, c.id)
		}
		if m.Kind != c.kind || !strings.Contains(m.Reason, c.reason) || m.Attempts != 1 || m.RoutingKey != key || m.Handler != "prompt_log" {
			t.Errorf("%s: parked with kind %q reason %q attempts %d key %q handler %q; want kind %q, a reason with %q, 1 attempt",
				c.name, m.Kind, m.Reason, m.Attempts, m.RoutingKey, m.Handler, c.kind, c.reason)
		}
	}
	if handled.distinct() != 1 {
		t.Errorf("the handler saw %d messages, want only the good one", handled.distinct())
	}
	if n := r.queueLen(conn, r.serviceQueue()); n != 0 {
		t.Errorf("service queue holds %d messages after parking, want 0", n)
	}
	if s := rel.Stats(); s.Retry.Retried != 0 || s.Retry.Redelivered != 0 || s.Poison.Parked != uint64(len(cases)) {
		t.Errorf("stats %+v: a permanent failure was retried", s)
	}
}

func TestFaults_transientFailureSucceedsOnThirdAttempt(t *testing.T) {
	r := relNewRabbit(t, nil)
	svc, rel := r.newService(reliability.Config{Retry: middleware.RetryConfig{MaxAttempts: 3, InitialInterval: time.Millisecond, NoJitter: true}})
	var calls atomic.Int32
	done := &relIDs{}
	if err := svc.HandleMessage("flaky", "orders.#", func(msg *message.Message) error {
		if calls.Add(1) < 3 {
			return errTransient
		}
		done.add(msg.UUID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)
	env, _ := envelope.New("orders.created", map[string]any{})
	if err := r.bus.Publish(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	relEventually(t, relWait, "the event processed", func() bool { return done.count(env.EventID.String()) == 1 })
	q := reliability.NewPoisonQueue(r.bus, r.service)
	if n, err := q.Count(context.Background()); err != nil || n != 0 {
		t.Errorf("%d parked (%v), want 0", n, err)
	}
	if s := rel.Stats(); calls.Load() != 3 || s.Retry.Retried != 2 || s.Retry.Redelivered != 0 || s.Poison.Parked != 0 {
		t.Errorf("%d calls, stats %+v; want 3 calls, 2 in-process retries", calls.Load(), s)
	}
}

// A message that always fails goes through both delay queues and is parked
// after MaxAttempts × (MaxRedeliveries + 1) attempts, its count carried in
// headers; while it waits in a delay queue the single consumer handles the
// messages behind it.
func TestFaults_lastingFailureIsParkedAfterRedeliveriesWithoutPinning(t *testing.T) {
	r := relNewRabbit(t, nil, "BB_CONSUMERS=1")
	svc, rel := r.newService(reliability.Config{Retry: faultRetry()})
	var mu sync.Mutex
	type step struct {
		what    string
		attempt int
		at      time.Time
	}
	var steps []step
	if err := svc.HandleMessage("ledger", "orders.#", func(msg *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if envelope.EventType(msg) == "orders.broken" {
			steps = append(steps, step{"broken", middleware.AttemptFromCtx(msg.Context()), time.Now()})
			return errTransient
		}
		steps = append(steps, step{msg.UUID, 0, time.Now()})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)
	ctx := context.Background()
	broken, _ := envelope.New("orders.broken", map[string]any{})
	var good []envelope.Envelope
	for range 3 {
		env, _ := envelope.New("orders.created", map[string]any{})
		good = append(good, env)
	}
	if err := r.bus.Publish(ctx, append([]envelope.Envelope{broken}, good...)...); err != nil {
		t.Fatal(err)
	}
	q := reliability.NewPoisonQueue(r.bus, r.service)
	waitParked(t, q, 1)
	m, err := q.Show(ctx, broken.EventID.String())
	if err != nil {
		t.Fatal(err)
	}
	if m.Attempts != 6 || m.Kind != envelope.KindHandler || m.Reason != errTransient.Error() || m.Handler != "ledger" || m.RoutingKey != "orders.broken" {
		t.Errorf("parked = attempts %d kind %q reason %q handler %q key %q", m.Attempts, m.Kind, m.Reason, m.Handler, m.RoutingKey)
	}
	mu.Lock()
	defer mu.Unlock()
	var attempts []int
	var times []time.Time
	lastGood := -1
	firstRedelivered := -1
	for i, s := range steps {
		if s.what == "broken" {
			attempts = append(attempts, s.attempt)
			times = append(times, s.at)
			if s.attempt == 3 {
				firstRedelivered = i
			}
		} else {
			lastGood = i
		}
	}
	if !equalInts(attempts, []int{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("attempts of the failing message = %v, want 1..6 (the count must survive the broker)", attempts)
	}
	if lastGood < 0 || lastGood > firstRedelivered {
		t.Errorf("the messages behind the failing one were handled at step %d, after its redelivery at %d: the consumer was pinned", lastGood, firstRedelivered)
	}
	if w := times[2].Sub(times[1]); w < relTestDelays[0] {
		t.Errorf("first redelivery came back after %s, want at least the %s delay", w, relTestDelays[0])
	}
	if w := times[4].Sub(times[3]); w < relTestDelays[1] {
		t.Errorf("second redelivery came back after %s, want at least the %s delay", w, relTestDelays[1])
	}
	if s := rel.Stats(); s.Retry.Redelivered != 2 || s.Retry.Exhausted != 1 || s.Poison.Parked != 1 {
		t.Errorf("stats %+v", s)
	}
}

// The same event delivered twice runs the handler once; a delivery whose
// handler failed goes back through a delay queue and is processed when it
// returns, not skipped as a duplicate.
func TestFaults_dedupOnRedis(t *testing.T) {
	addr := testenv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = client.Close() })
	r := relNewRabbit(t, nil, "BB_CONSUMERS=1")
	prefix := "bloodbank:dedup:test:" + uuid.NewString() + ":"
	t.Cleanup(func() {
		if keys, err := client.Keys(context.Background(), prefix+"*").Result(); err == nil && len(keys) > 0 {
			client.Del(context.Background(), keys...)
		}
	})
	svc, rel := r.newService(reliability.Config{
		Retry:      middleware.RetryConfig{MaxAttempts: 1, MaxRedeliveries: 2},
		DedupStore: middleware.NewRedisDedupStore(client, prefix),
	})
	processed := &relIDs{}
	var failOnce sync.Map
	if err := svc.HandleMessage("invoice", "orders.#", func(msg *message.Message) error {
		if _, failed := failOnce.LoadOrStore(msg.UUID, true); !failed && envelope.EventType(msg) == "orders.flaky" {
			return errTransient
		}
		processed.add(msg.UUID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)
	ctx := context.Background()
	twice, _ := envelope.New("orders.created", map[string]any{})
	flaky, _ := envelope.New("orders.flaky", map[string]any{})
	if err := r.bus.Publish(ctx, twice, twice, flaky); err != nil {
		t.Fatal(err)
	}
	relEventually(t, relWait, "both events processed", func() bool {
		return processed.count(twice.EventID.String()) >= 1 && processed.count(flaky.EventID.String()) >= 1
	})
	// The flaky one again, now that it succeeded: a duplicate.
	if err := r.bus.Publish(ctx, flaky); err != nil {
		t.Fatal(err)
	}
	relEventually(t, relWait, "two duplicates skipped", func() bool { return rel.Stats().Dedup.Duplicates == 2 })
	if a, b := processed.count(twice.EventID.String()), processed.count(flaky.EventID.String()); a != 1 || b != 1 {
		t.Errorf("handler ran %d and %d times, want once each", a, b)
	}
	if s := rel.Stats(); s.Retry.Redelivered != 1 || s.Dedup.Processed != 2 || s.Dedup.StoreErrors != 0 {
		t.Errorf("stats %+v; want 1 redelivery, 2 processed", s)
	}
	if n, _ := client.Exists(ctx, prefix+r.service+":invoice:"+flaky.EventID.String()).Result(); n != 1 {
		t.Error("the processed event has no dedup key in Redis")
	}
}

// ---- disruptive tests ----

func skipUnlessDisruptive(t *testing.T) {
	t.Helper()
	if os.Getenv("BB_TEST_DISRUPTIVE") != "1" {
		t.Skip("kills processes or stops servers; run alone with BB_TEST_DISRUPTIVE=1 (make test does)")
	}
}

// The child consumer: a process of the service that writes each event id
// it handled to a file, before acking it.
const (
	envChild         = "BB_REL_CHILD"
	envChildExchange = "BB_REL_EXCHANGE"
	envChildService  = "BB_REL_SERVICE"
	envChildOut      = "BB_REL_OUT"
	envChildURL      = "BB_REL_RABBIT_URL"
)

func runChildConsumer(t *testing.T) {
	out, err := os.OpenFile(os.Getenv(envChildOut), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	r := relJoinRabbit(t, os.Getenv(envChildURL), os.Getenv(envChildExchange), os.Getenv(envChildService), nil, "BB_CONSUMERS=4")
	svc, _ := r.newService(reliability.Config{NoRedelivery: true})
	if err := svc.HandleMessage("record", "stream.#", func(msg *message.Message) error {
		time.Sleep(5 * time.Millisecond) // some work, so the kill lands mid-stream
		// One write per id: a kill leaves the line whole or absent.
		_, err := out.Write([]byte(msg.UUID + "\n"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Until the parent kills this process or asks it to stop (SIGTERM: drain
	// and ack what was handled, as a deployment does); a bound in case it cannot.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	if err := svc.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// readIDs counts the ids in the children's file.
func readIDs(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if _, err := uuid.Parse(sc.Text()); err == nil {
			ids[sc.Text()]++
		}
	}
	return ids
}

// SIGKILL of a consumer in the middle of a stream: a new consumer processes
// everything the dead one had not acked; no message is lost.
func TestDisruptive_consumerKilledMidStream(t *testing.T) {
	if os.Getenv(envChild) == "consumer" {
		runChildConsumer(t)
		return
	}
	skipUnlessDisruptive(t)
	r := relNewRabbit(t, nil)
	conn := r.raw()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := (amqp.Topology{Exchange: r.exchange}).DeclareQueue(ch, r.serviceQueue(), "stream.#"); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	const n = 400
	var envs []envelope.Envelope
	for i := range n {
		env, _ := envelope.New("stream.tick", map[string]any{"n": i})
		envs = append(envs, env)
	}
	if err := r.bus.Publish(context.Background(), envs...); err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(t.TempDir(), "processed.txt")
	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDisruptive_consumerKilledMidStream$", "-test.count=1")
		cmd.Env = append(os.Environ(), envChild+"=consumer", envChildExchange+"="+r.exchange, envChildService+"="+r.service,
			envChildOut+"="+outFile, envChildURL+"="+r.url)
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		return cmd, &logs
	}
	first, logs := start()
	relEventually(t, time.Minute, "the first consumer to process 100 events", func() bool { return len(readIDs(t, outFile)) >= 100 })
	if err := first.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill := len(readIDs(t, outFile))
	if atKill >= n {
		t.Fatalf("the consumer finished the stream (%d) before it was killed; the test proves nothing", atKill)
	}
	t.Logf("killed the consumer after %d of %d events", atKill, n)

	second, logs2 := start()
	relEventually(t, time.Minute, "every event processed after the restart", func() bool { return len(readIDs(t, outFile)) == n })
	// A graceful stop, not a second kill: a handler's last ack may still be on
	// its way when its line is written, and a kill there would requeue it
	// (at-least-once, but then the queue check below would mean nothing).
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Errorf("the second consumer did not stop cleanly on SIGTERM: %v", err)
	}
	ids := readIDs(t, outFile)
	again := 0
	for _, env := range envs {
		switch c := ids[env.EventID.String()]; {
		case c == 0:
			t.Errorf("event %s lost", env.EventID)
		case c > 1:
			again++
		}
	}
	t.Logf("%d events processed twice (in flight at the kill: at-least-once)", again)
	if t.Failed() {
		t.Logf("first consumer:\n%s\nsecond consumer:\n%s", logs, logs2)
	}
	if q := r.queueLen(conn, r.serviceQueue()); q != 0 {
		t.Errorf("%d messages left in the service queue", q)
	}
}

func restartRabbit(t *testing.T) {
	t.Helper()
	// Always leave the broker running, whatever happens below.
	t.Cleanup(func() {
		_ = exec.Command("rabbitmqctl", "start_app").Run()
		_ = exec.Command("rabbitmqctl", "await_startup").Run()
	})
	for _, args := range [][]string{{"stop_app"}, {"start_app"}, {"await_startup"}} {
		start := time.Now()
		if out, err := exec.Command("rabbitmqctl", args...).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl %s: %v\n%s", args[0], err, out)
		}
		t.Logf("rabbitmqctl %s took %s", args[0], time.Since(start).Round(time.Millisecond))
	}
}

// RabbitMQ restarts during a stream: the publisher gets errors and retries,
// the service's consumers come back by themselves, nothing is lost.
func TestDisruptive_brokerRestartDuringStream(t *testing.T) {
	skipUnlessDisruptive(t)
	r := relNewRabbit(t, nil, "BB_CONSUMERS=4")
	svc, _ := r.newService(reliability.Config{})
	processed := &relIDs{}
	if err := svc.HandleMessage("count", "stream.#", func(msg *message.Message) error {
		processed.add(msg.UUID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)

	const n = 300
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var published atomic.Int32
	var publishErrors atomic.Int32
	var ids []string
	pubDone := make(chan error, 1)
	go func() {
		for i := range n {
			env, _ := envelope.New("stream.tick", map[string]any{"n": i})
			ids = append(ids, env.EventID.String())
			// At-least-once from the producer: retry the same event (same id)
			// until the broker confirms it.
			for {
				err := r.bus.Publish(ctx, env)
				if err == nil {
					break
				}
				publishErrors.Add(1)
				select {
				case <-ctx.Done():
					pubDone <- fmt.Errorf("publishing did not recover: %w", err)
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
			published.Add(1)
			time.Sleep(10 * time.Millisecond) // a stream, not a burst
		}
		pubDone <- nil
	}()
	relEventually(t, time.Minute, "a third of the stream processed", func() bool { return processed.distinct() >= n/3 })
	atStop := published.Load()
	if atStop >= n {
		t.Fatalf("the stream ended before the broker was stopped; the test proves nothing")
	}
	restartRabbit(t)
	t.Logf("broker stopped after %d of %d events were published; %d were when it was back", atStop, n, published.Load())
	restarted := time.Now()
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	relEventually(t, time.Minute, "every event processed after the restart", func() bool { return processed.distinct() == n })
	t.Logf("every event processed %s after the broker was back", time.Since(restarted).Round(time.Millisecond))
	for _, id := range ids {
		if processed.count(id) == 0 {
			t.Errorf("event %s lost", id)
		}
	}
	// Bus.Publish waits for the reconnect (up to BB_PUBLISH_TIMEOUT) rather
	// than failing at once, so a short restart may cost no error at all.
	t.Logf("%d publish errors during the restart, all retried", publishErrors.Load())
}

type countingRedisLog struct{ n atomic.Int64 }

func (l *countingRedisLog) Printf(context.Context, string, ...any) { l.n.Add(1) }

func redisCLI(addr string, args ...string) *exec.Cmd {
	host, port, _ := strings.Cut(addr, ":")
	return exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...)
}

func redisUp(addr string) bool {
	out, err := redisCLI(addr, "ping").Output()
	return err == nil && strings.TrimSpace(string(out)) == "PONG"
}

// startRedis starts the test Redis again as CI starts it.
func startRedis(t *testing.T, addr string) {
	t.Helper()
	if redisUp(addr) {
		return
	}
	host, port, _ := strings.Cut(addr, ":")
	if out, err := exec.Command("redis-server", "--daemonize", "yes", "--bind", host, "--port", port, "--save", "", "--appendonly", "no").CombinedOutput(); err != nil {
		t.Errorf("cannot restart redis-server: %v\n%s", err, out)
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for !redisUp(addr) {
		if time.Now().After(deadline) {
			t.Error("redis did not answer PING after its restart")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Redis stops during a stream that uses dedup and the correlation recorder:
// every event is still processed, the failures are logged as warnings and
// counted.
func TestDisruptive_redisStoppedDuringStream(t *testing.T) {
	skipUnlessDisruptive(t)
	addr := testenv.Redis(t)
	t.Cleanup(func() { startRedis(t, addr) }) // always leave Redis running
	// go-redis logs every failed dial to stderr; count them instead (it
	// keeps one logger per process, and this process is a test binary).
	redisLog := &countingRedisLog{}
	redis.SetLogger(redisLog)
	host, port, _ := strings.Cut(addr, ":")
	var portNum int
	fmt.Sscan(port, &portNum)
	client, err := correlation.NewUniversalClient(correlation.Settings{Host: host, Port: portNum})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	prefix := "bloodbank:test:" + uuid.NewString() + ":"
	store, err := correlation.NewRedisStore(client, correlation.RedisConfig{KeyPrefix: prefix + "correlation:", TTL: time.Minute, WriteTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	logs := &relLogs{}
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{Timeout: 200 * time.Millisecond, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rec.Close(context.Background()) })

	r := relNewRabbit(t, nil, "BB_CONSUMERS=4")
	svc, rel := r.newService(reliability.Config{
		DedupStore: middleware.NewRedisDedupStore(client, prefix+"dedup:"),
		Logger:     logs.logger(),
	})
	processed := &relIDs{}
	if err := svc.HandleMessage("link", "stream.#", func(msg *message.Message) error {
		parent, err := uuid.Parse(msg.UUID)
		if err != nil {
			return envelope.Permanent(err)
		}
		rec.Record(msg.Context(), correlation.Link{Child: uuid.New(), Parents: []uuid.UUID{parent}})
		processed.add(msg.UUID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relRunService(t, svc)

	const n = 150
	ctx := context.Background()
	publish := func(from, to int) []string {
		var ids []string
		for i := from; i < to; i++ {
			env, _ := envelope.New("stream.tick", map[string]any{"n": i})
			if err := r.bus.Publish(ctx, env); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, env.EventID.String())
		}
		return ids
	}
	ids := publish(0, n/3)
	relEventually(t, relWait, "the first third processed with Redis up", func() bool { return processed.distinct() == n/3 })
	if rel.Stats().Dedup.StoreErrors != 0 || rec.Failed() != 0 {
		t.Fatalf("failures with Redis up: dedup %d, correlation %d", rel.Stats().Dedup.StoreErrors, rec.Failed())
	}

	if out, err := redisCLI(addr, "shutdown", "nosave").CombinedOutput(); err != nil && redisUp(addr) {
		t.Fatalf("cannot stop Redis: %v\n%s", err, out)
	}
	ids = append(ids, publish(n/3, n)...)
	relEventually(t, time.Minute, "every event processed with Redis down", func() bool { return processed.distinct() == n })
	for _, id := range ids {
		if processed.count(id) == 0 {
			t.Errorf("event %s lost", id)
		}
	}
	s := rel.Stats()
	if s.Dedup.StoreErrors == 0 || rec.Failed() == 0 {
		t.Errorf("counters did not move: dedup store errors %d, correlation failed %d", s.Dedup.StoreErrors, rec.Failed())
	}
	if !logs.contains("level=WARN msg=\"dedup store failed") {
		t.Errorf("no dedup warning logged:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "level=WARN") || strings.Count(logs.String(), "level=WARN") < 2 {
		t.Errorf("want warnings from dedup and from the correlation recorder:\n%s", logs)
	}
	t.Logf("with Redis down: %d dedup store errors, %d correlation links not written, %d go-redis log lines", s.Dedup.StoreErrors,
		rec.Failed(), redisLog.n.Load())

	// Redis back: dedup resumes once the client reconnects (go-redis
	// retries a failed dial about once a second).
	startRedis(t, addr)
	relEventually(t, relWait, "the Redis client to reconnect", func() bool { return client.Ping(ctx).Err() == nil })
	before := rel.Stats().Dedup.StoreErrors
	more := publish(n, n+10)
	relEventually(t, relWait, "events processed after Redis came back", func() bool { return processed.distinct() == n+10 })
	if after := rel.Stats().Dedup.StoreErrors; after != before {
		t.Errorf("dedup store still failing after Redis came back: %d → %d", before, after)
	}
	if seen, err := middleware.NewRedisDedupStore(client, prefix+"dedup:").Seen(ctx, r.service+":link:"+more[0]); err != nil || !seen {
		t.Errorf("dedup key of an event processed after the restart: %v, %v", seen, err)
	}
}
