package main_test

import (
	"strings"
	"testing"
)

func TestReplay_reachesOnlyTheTargetServiceWithTheReplayHeader(t *testing.T) {
	r := newRabbit(t)
	r.eventLog()
	envs := logEvents(t, 3)
	r.publishEnvelopes(envs)
	target := r.exchange + ".target"
	if _, err := r.ch.QueueDeclare(target, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = r.ch.QueueDelete(target, false, false, false) })
	other := r.bindQueue("#") // a bystander bound to everything
	env := run{env: r.env()}

	res := mustSucceed(t, env, "replay", "--id", envs[1].EventID.String(), "--to-service", "target", "--dry-run")
	if !strings.Contains(res.stdout, envs[1].EventID.String()) || r.passiveDepth(target) != 0 {
		t.Errorf("dry run: want the event listed and nothing sent\n%s", res)
	}

	res = mustSucceed(t, env, "replay", "--id", envs[1].EventID.String(), "--to-service", "target")
	replayID := strings.TrimSpace(res.stdout)
	d := r.get(target)
	if d.MessageId != envs[1].EventID.String() || d.Headers["x-bb-replay"] != replayID || replayID == "" {
		t.Errorf("replayed delivery: id %q headers %v, want id %s and x-bb-replay %q", d.MessageId, d.Headers, envs[1].EventID, replayID)
	}
	if body, _ := envs[1].MarshalJSON(); string(d.Body) != string(body) {
		t.Errorf("replayed body %s, want the original %s", d.Body, body)
	}
	if n := r.passiveDepth(other); n != 0 {
		t.Errorf("the bystander queue holds %d messages, want none: a replay goes to the target only", n)
	}

	for _, args := range [][]string{
		{"replay", "--id", "nope", "--to-service", "target"},
		{"replay", "--since", "1h"},
		{"replay", "--to-service", "target"},
		{"replay", "--id", envs[0].EventID.String(), "--to-service", "missing"},
	} {
		if res := bb(t, env, args...); res.code != 1 {
			t.Errorf("bb %s: want exit 1\n%s", strings.Join(args, " "), res)
		}
	}
}

// passiveDepth is the number of messages a queue holds now.
func (r *rabbit) passiveDepth(queue string) int {
	r.t.Helper()
	ch, err := r.conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return q.Messages
}
