package main_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// browser starts a headless Chromium for one test. Without one the test
// skips, unless BB_REQUIRE_SERVICES=1 (CI), where it fails.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if testenv.Required() {
			t.Fatal("chromium is not installed and BB_REQUIRE_SERVICES=1: apt-get install chromium")
		}
		t.Skip("chromium is not installed: apt-get install chromium to run the console's browser tests")
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800), chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first action starts the browser, which lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("cannot start %s: %v", path, err)
	}
	return ctx
}

// do runs the steps in the browser, within 30 seconds.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// get runs one step that returns a value, within 30 seconds.
func get[T any](t *testing.T, ctx context.Context, step chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, step)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// forgetKeys deletes Redis keys when the test ends.
func (e *rabbitEnv) forgetKeys(keys ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys = append(e.keys, keys...)
}

// The graph page of a three-level chain draws every node, linked to its
// event page; an unknown id says so. The screenshot is the README's.
func TestConsole_graphPageShowsEveryNodeOfAChain(t *testing.T) {
	e := newRabbitEnv(t)
	e.serviceQueues("command_processor")
	store, err := correlation.NewRedisStore(e.redis, correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	prompt, response, llm, tool := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{prompt, response, llm, tool} {
		e.forgetKeys(store.ForwardKey(id), store.ReverseKey(id))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.Record(ctx,
		correlation.Link{Child: response, Parents: []uuid.UUID{prompt}, Metadata: map[string]any{"event_type": "agent.thread.response", "source_app": "command_processor"}},
		correlation.Link{Child: llm, Parents: []uuid.UUID{response}, Metadata: map[string]any{"event_type": "llm.prompt", "source_app": "command_processor"}},
		correlation.Link{Child: tool, Parents: []uuid.UUID{response}, Metadata: map[string]any{"event_type": "agent.tool.call", "source_app": "tools"}},
	); err != nil {
		t.Fatal(err)
	}
	p := start(t, e.env()...)
	p.waitReady(30 * time.Second)

	b := browser(t)
	do(t, b, chromedp.Navigate("http://"+p.addr+"/ui/events/"+response.String()),
		chromedp.WaitVisible(chromedp.CSS(`svg#graph a.node`)))
	ids := get(t, b, chromedp.Evaluate[[]string](`[...document.querySelectorAll('svg#graph a.node')].map(n => n.dataset.id)`))
	shot := get(t, b, chromedp.FullScreenshot(100))
	want := []string{prompt.String(), response.String(), llm.String(), tool.String()}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("graph nodes = %v, want %v", ids, want)
	}
	// The README's screenshot: BB_UPDATE_SCREENSHOT=1 writes it to docs/,
	// so that an ordinary run leaves the checkout as it found it.
	where := filepath.Join(t.TempDir(), "console-graph.png")
	if os.Getenv("BB_UPDATE_SCREENSHOT") == "1" {
		where = filepath.Join("..", "..", "docs", "console-graph.png")
	}
	if len(shot) < 1000 || string(shot[1:4]) != "PNG" {
		t.Errorf("the screenshot is not a PNG (%d bytes)", len(shot))
	} else if err := os.WriteFile(where, shot, 0o644); err != nil {
		t.Errorf("cannot save the screenshot: %v", err)
	}

	node := chromedp.CSS(`svg#graph a.node[data-id="` + llm.String() + `"]`)
	href := get(t, b, chromedp.AttributeValue(node, "href")).Value
	// SVG elements have no innerText, which chromedp.Text reads.
	text := get(t, b, chromedp.Evaluate[string](`document.querySelector('svg#graph a.node[data-id="`+llm.String()+`"]').textContent`))
	if href != "/ui/events/"+llm.String() || !strings.Contains(text, "llm.prompt") || !strings.Contains(text, "command_processor") {
		t.Errorf("the llm.prompt node links to %q and reads %q", href, text)
	}
	do(t, b, chromedp.Navigate("http://"+p.addr+"/ui/events/"+uuid.NewString()),
		chromedp.WaitVisible(chromedp.CSS(`#graph-error`)))
	text = get(t, b, chromedp.Text(chromedp.CSS(`#graph-error`)))
	if !strings.Contains(text, "Unknown event") {
		t.Errorf("an unknown id reads %q", text)
	}
}

// parkByHand parks a valid prompt as the poison middleware parks one whose
// retries were given up, headers and all.
func (e *rabbitEnv) parkByHand(poisonQueue string, id uuid.UUID) {
	e.t.Helper()
	ch := e.channel()
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", poisonQueue, false, false, amqp091.Publishing{
		ContentType: "application/json", DeliveryMode: amqp091.Persistent, MessageId: id.String(), Body: pythonPrompt(id, "parked"),
		Headers: amqp091.Table{
			middleware.HeaderPoisonReason: "the model was unreachable: retries given up", middleware.HeaderPoisonKind: "handler",
			middleware.HeaderPoisonHandler: thread.RoutingKeyPrompt, middleware.HeaderPoisonService: "command_processor",
			middleware.HeaderPoisonAttempts: "3", "bb_original_routing_key": thread.RoutingKeyPrompt,
			middleware.HeaderPoisonLastFailure: "2026-01-29T10:00:00Z",
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if ok, err := c.WaitContext(ctx); !ok || err != nil {
		e.t.Fatalf("the broker did not confirm: %v", err)
	}
}

// A command the processor parked appears on /ui/dlq with its reason; a
// replay clicked with the token leaves the poison queue and is answered.
func TestConsole_dlqPageListsParkedMessagesAndReplaysThem(t *testing.T) {
	e := newRabbitEnv(t)
	poisonQueue := reliability.PoisonQueueName(e.serviceQueues("command_processor"))
	got := e.collectResponses()
	p := start(t, e.env("HTTP_TOKEN=s3cret")...)
	p.waitReady(30 * time.Second)

	invalidID, parkedID := uuid.New(), uuid.New()
	e.forget(parkedID, cqrs.SideEffectID(thread.RoutingKeyResponse, parkedID, 0))
	invalid := []byte(`{"event_id":"` + invalidID.String() + `","event_type":"agent.thread.prompt","timestamp":"2026-01-29T10:00:00.123456+00:00","version":"1.0.0","source":{"host":"127.0.0.1","type":"manual","app":"http-client","meta":null},"correlation_ids":[],"agent_context":null,"payload":{"provider":"anthropic","model":null,"tags":[]}}`)
	e.publishRaw(thread.RoutingKeyPrompt, invalidID.String(), invalid)
	e.parkByHand(poisonQueue, parkedID)
	deadline := time.Now().Add(15 * time.Second)
	for e.depth(poisonQueue) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages parked, want 2", e.depth(poisonQueue))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Without the token, a replay is refused before it reaches the queue.
	resp, err := http.Post("http://"+p.addr+"/ui/api/dlq/replay", "application/json",
		strings.NewReader(`{"service":"command_processor","all":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("replay without the token: %d, want 401", resp.StatusCode)
	}

	b := browser(t)
	row := func(id uuid.UUID, sub string) chromedp.CSS {
		return chromedp.CSS(`#dlq-table tr[data-id="` + id.String() + `"]` + sub)
	}
	do(t, b, chromedp.Navigate("http://"+p.addr+"/ui/dlq?service=command_processor"),
		chromedp.WaitVisible(row(parkedID, "")))
	invalidText := get(t, b, chromedp.Text(row(invalidID, "")))
	if !strings.Contains(invalidText, "invalid") || !strings.Contains(invalidText, invalidID.String()) {
		t.Errorf("the invalid command's row reads %q", invalidText)
	}
	do(t, b, chromedp.SendKeys(chromedp.CSS(`#token`), "s3cret"),
		chromedp.Click(row(parkedID, ` button.replay`)),
		chromedp.WaitVisible(chromedp.CSS(`#dlq-status .banner.ok`)))
	got.waitFor(t, 15*time.Second, "the replayed prompt is answered", func(n int) bool { return n == 1 })
	deadline = time.Now().Add(10 * time.Second)
	for e.depth(poisonQueue) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages parked after the replay, want the invalid one alone", e.depth(poisonQueue))
		}
		time.Sleep(50 * time.Millisecond)
	}
	do(t, b, chromedp.Navigate("http://"+p.addr+"/ui/dlq?service=command_processor"),
		chromedp.WaitVisible(row(invalidID, "")), chromedp.WaitNotPresent(row(parkedID, "")))
}

// The live tail shows a published event within a second; without a token
// the console is read-only and refuses replays with 403.
func TestConsole_tailShowsAPublishedEventWithinASecond(t *testing.T) {
	e := newRabbitEnv(t)
	e.serviceQueues("command_processor")
	p := start(t, e.env()...)
	p.waitReady(30 * time.Second)

	resp, err := http.Post("http://"+p.addr+"/ui/api/dlq/replay", "application/json",
		strings.NewReader(`{"service":"command_processor","all":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("replay without HTTP_TOKEN: %d, want 403", resp.StatusCode)
	}

	b := browser(t)
	do(t, b, chromedp.Navigate("http://"+p.addr+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#catalogue-list a[data-key="agent.thread.prompt"]`)),
		chromedp.Click(chromedp.CSS(`#tail-start`)),
		chromedp.Poll[chromedp.Void](`document.getElementById('tail-status').textContent.startsWith('listening')`))
	id := uuid.New()
	e.forget(id, cqrs.SideEffectID(thread.RoutingKeyResponse, id, 0))
	published := time.Now()
	if err := e.publishPrompts([]uuid.UUID{id}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b, chromedp.Poll[chromedp.Void](`document.getElementById('tail-log').textContent.includes('`+id.String()+`')`,
		chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(time.Second))); err != nil {
		t.Fatalf("the tail did not show %s within a second of its publish: %v", id, err)
	}
	t.Logf("shown %s after the publish", time.Since(published).Round(time.Millisecond))
}
