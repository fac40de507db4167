package main_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// buildBB builds the bb binary for one test, which runs it as an operator does.
func buildBB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bb")
	if out, err := exec.Command("go", "build", "-o", path, "../bb").CombinedOutput(); err != nil {
		t.Fatalf("cannot build bb: %v\n%s", err, out)
	}
	return path
}

// runBB runs bb with the test's settings and returns its stdout, failing
// the test on a non-zero exit.
func (e *rabbitEnv) runBB(bin string, args ...string) string {
	e.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, e.env()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("bb %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// A three-level chain (prompt, its response, an event the response
// caused) replayed as a subtree into the processor's queue: the events go
// there only, in causal order, and the prompt is answered again with a new
// response linked to the first by replay_of; another replay answers once more.
func TestRabbit_subtreeReplayAnswersThePromptAgainWithALinkedResponse(t *testing.T) {
	bb := buildBB(t)
	e := newRabbitEnv(t)
	e.serviceQueues("command_processor")
	e.queue("log")
	bystander := e.queue("bystander")
	ch := e.channel()
	defer ch.Close()
	if _, err := ch.QueueDeclare(bystander, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(bystander, "#", e.exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	got := e.collectResponses()
	p := start(t, e.env("BB_EVENT_LOG=on", "BB_EVENT_LOG_MAX_AGE=1h", "BB_EVENT_LOG_MAX_BYTES=10000000")...)
	p.waitReady(30 * time.Second)

	prompt := uuid.New()
	if err := e.publishPrompts([]uuid.UUID{prompt}); err != nil {
		t.Fatal(err)
	}
	answers := func(n int) func(int) bool {
		return func(int) bool {
			got.mu.Lock()
			defer got.mu.Unlock()
			return len(got.byPrompt[prompt.String()]) >= n
		}
	}
	got.waitFor(t, 15*time.Second, "the prompt is answered", answers(1))
	first := uuid.MustParse(got.byPrompt[prompt.String()][0])

	// The third level: an event the response caused, published and linked
	// as the Python publisher does.
	grandchild := uuid.New()
	e.forget(prompt, first)
	e.mu.Lock()
	e.keys = append(e.keys, correlation.DefaultKeyPrefix+"reverse:"+first.String(), correlation.DefaultKeyPrefix+"forward:"+grandchild.String())
	e.mu.Unlock()
	store, err := correlation.NewRedisStore(e.redis, correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Record(ctx, correlation.Link{Child: grandchild, Parents: []uuid.UUID{first}}); err != nil {
		t.Fatal(err)
	}
	gc, err := envelope.New("custom.thing.happened", map[string]int{"n": 1}, envelope.WithEventID(grandchild), envelope.WithCorrelationIDs(first))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := gc.MarshalJSON()
	e.publishRaw(gc.EventType, grandchild.String(), body)
	waitUntil(t, 15*time.Second, "the first link is recorded", func() bool {
		parents, err := store.Parents(ctx, first)
		return err == nil && len(parents) == 1 && parents[0] == prompt
	})

	dry := e.runBB(bb, "replay", "--subtree", prompt.String(), "--to-service", "command_processor", "--dry-run")
	iPrompt, iFirst, iGrand := strings.Index(dry, prompt.String()), strings.Index(dry, "  "+first.String()), strings.Index(dry, "  "+grandchild.String())
	if iPrompt < 0 || iFirst < 0 || iGrand < 0 || iPrompt > iFirst || iFirst > iGrand {
		t.Fatalf("dry run lists, want prompt, response, grandchild in that order:\n%s", dry)
	}

	replays := map[string]uuid.UUID{}
	for n, replay := range []string{"first replay", "second replay"} {
		replayID := strings.TrimSpace(e.runBB(bb, "replay", "--subtree", prompt.String(), "--to-service", "command_processor", "--yes"))
		got.waitFor(t, 15*time.Second, replay+" answers the prompt again", answers(n+2))
		again := uuid.MustParse(got.byPrompt[prompt.String()][n+1])
		replays[replayID] = again
		e.mu.Lock()
		e.keys = append(e.keys, correlation.DefaultKeyPrefix+"forward:"+again.String())
		e.mu.Unlock()
		if want := cqrs.ReplaySideEffectID(thread.RoutingKeyResponse, prompt, 0, replayID); again != want || again == first {
			t.Errorf("%s: response %s, want %s, derived from replay %s and other than the first %s", replay, again, want, replayID, first)
		}
		waitUntil(t, 15*time.Second, replay+"'s response is linked with replay_of", func() bool {
			md, err := store.Metadata(ctx, again)
			return err == nil && md["replay_of"] == first.String()
		})
	}
	if len(replays) != 2 {
		t.Errorf("replay ids %v: want two different ones", replays)
	}

	// The bystander, bound to '#', saw the prompt and the grandchild once
	// and the three responses, but no replayed event.
	keys := map[string]int{}
	for {
		d, ok, err := ch.Get(bystander, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if _, replayed := d.Headers[envelope.MetaReplay]; replayed {
			t.Errorf("the bystander got replayed event %s (%s)", d.MessageId, d.RoutingKey)
		}
		keys[d.RoutingKey]++
	}
	if keys[thread.RoutingKeyPrompt] != 1 || keys["custom.thing.happened"] != 1 || keys[thread.RoutingKeyResponse] != 3 {
		t.Errorf("the bystander got %v, want 1 prompt, 1 custom.thing.happened and 3 responses", keys)
	}
}

// waitUntil polls cond until it holds, or fails after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
