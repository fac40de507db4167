package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
)

// eventLog declares the test exchange's event log, deleted at the end.
func (r *rabbit) eventLog() string {
	r.t.Helper()
	if err := amqp.DeclareEventLog(r.ch, r.exchange, amqp.EventLogConfig{MaxAge: "1h", MaxBytes: 50_000_000}); err != nil {
		r.t.Fatal(err)
	}
	queue := amqp.EventLogQueue(r.exchange)
	r.t.Cleanup(func() {
		if _, err := r.ch.QueueDelete(queue, false, false, false); err != nil {
			r.t.Errorf("cannot delete the event log %s: %v", queue, err)
		}
	})
	return queue
}

// publishEnvelopes publishes envs on the exchange, each under its event
// type, and waits until the broker confirmed them all.
func (r *rabbit) publishEnvelopes(envs []envelope.Envelope) {
	r.t.Helper()
	ch, err := r.conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	confs := make([]*amqp091.DeferredConfirmation, len(envs))
	for i, env := range envs {
		body, err := env.MarshalJSON()
		if err != nil {
			r.t.Fatal(err)
		}
		confs[i], err = ch.PublishWithDeferredConfirmWithContext(ctx, r.exchange, env.EventType, false, false,
			amqp091.Publishing{MessageId: env.EventID.String(), ContentType: "application/json", Timestamp: env.Timestamp, Body: body})
		if err != nil {
			r.t.Fatal(err)
		}
	}
	for _, c := range confs {
		if ok, err := c.WaitContext(ctx); !ok || err != nil {
			r.t.Fatalf("the broker did not confirm a publish: %v", err)
		}
	}
}

// logEvents makes n envelopes a millisecond apart, starting 2 s ago,
// alternately of types log.a.even and log.b.odd, each with its index n.
func logEvents(t *testing.T, n int) []envelope.Envelope {
	t.Helper()
	base := time.Now().Add(-2 * time.Second).Truncate(time.Millisecond)
	envs := make([]envelope.Envelope, n)
	for i := range envs {
		key := "log.a.even"
		if i%2 == 1 {
			key = "log.b.odd"
		}
		env, err := envelope.New(key, map[string]any{"n": i}, envelope.WithTimestamp(base.Add(time.Duration(i)*time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		envs[i] = env
	}
	return envs
}

// indexes reads the payload index n of every line of bb log --json.
func indexes(t *testing.T, stdout string) []int {
	t.Helper()
	var got []int
	for line := range strings.Lines(stdout) {
		var env struct {
			Payload struct{ N int } `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			t.Fatalf("line %q is not an envelope: %v", line, err)
		}
		got = append(got, env.Payload.N)
	}
	return got
}

func wantIndexes(t *testing.T, what string, got []int, from, to, step int) {
	t.Helper()
	var want []int
	for i := from; i <= to; i += step {
		want = append(want, i)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: got %d events %v, want %d, %d..%d step %d, in order", what, len(got), got, len(want), from, to, step)
	}
}

func TestLog_readsAThousandEventsInOrderByTimeAndPattern(t *testing.T) {
	r := newRabbit(t)
	r.eventLog()
	envs := logEvents(t, 1000)
	r.publishEnvelopes(envs)
	env := run{env: r.env()}

	res := mustSucceed(t, env, "log", "--json")
	wantIndexes(t, "everything", indexes(t, res.stdout), 0, 999, 1)

	// A duration seeks the stream by the broker's clock.
	res = mustSucceed(t, env, "log", "--json", "--since", "1m")
	wantIndexes(t, "--since 1m", indexes(t, res.stdout), 0, 999, 1)

	since := envelope.FormatTimestamp(envs[300].Timestamp)
	until := envelope.FormatTimestamp(envs[699].Timestamp)
	res = mustSucceed(t, env, "log", "--json", "--since", since, "--until", until, "--pattern", "log.a.*")
	wantIndexes(t, "range and pattern", indexes(t, res.stdout), 300, 698, 2)

	res = mustSucceed(t, env, "log", "--json", "--pattern", "log.b.#", "--limit", "10")
	wantIndexes(t, "pattern and limit", indexes(t, res.stdout), 1, 19, 2)

	// The default line: time, routing key, event id, envelope.
	res = mustSucceed(t, env, "log", "--limit", "1")
	fields := strings.SplitN(strings.TrimSpace(res.stdout), "  ", 4)
	body, _ := envs[0].MarshalJSON()
	want := []string{envelope.FormatTimestamp(envs[0].Timestamp), "log.a.even", envs[0].EventID.String(), string(body)}
	if fmt.Sprint(fields) != fmt.Sprint(want) {
		t.Errorf("default line = %q, want the fields %q", res.stdout, want)
	}
}

func TestLog_badArgumentsExitOneAndAMissingLogExitsTwo(t *testing.T) {
	r := newRabbit(t)
	for _, args := range [][]string{
		{"log", "--since", "yesterday"},
		{"log", "--since", "1h", "--until", "2h"},
		{"log", "--pattern", strings.Repeat("a", 256)},
		{"log", "--limit", "-1"},
		{"log", "stray"},
	} {
		if res := bb(t, run{env: r.env()}, args...); res.code != 1 || res.stderr == "" {
			t.Errorf("bb %s: want exit 1 with a message\n%s", strings.Join(args, " "), res)
		}
	}
	res := bb(t, run{env: r.env()}, "log")
	if res.code != 2 || !strings.Contains(res.stderr, "BB_EVENT_LOG=on") {
		t.Errorf("bb log without a log: want exit 2 saying how to keep one\n%s", res)
	}
	res = bb(t, run{env: []string{"RABBIT_URL=amqp://guest:guest@127.0.0.1:1/"}}, "log", "--timeout", "2s")
	if res.code != 2 {
		t.Errorf("bb log with the broker unreachable: want exit 2\n%s", res)
	}
}
