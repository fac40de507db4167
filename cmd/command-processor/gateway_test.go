package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// post sends a JSON body and decodes the JSON answer.
func (p *processor) post(path, body string, header ...string) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+p.addr+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	err = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, err
}

// metric reads one unlabelled sample from GET /metrics.
func (p *processor) metric(name string) float64 {
	p.t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + p.addr + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				p.t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	p.t.Fatalf("GET /metrics has no sample %s", name)
	return 0
}

// A prompt posted to the gateway of the running binary is executed: its
// answer shows up as its child in GET /events/{id}/correlation, and the
// publish counter moves.
func TestCommandProcessor_gatewayPromptIsAnsweredAndCounted(t *testing.T) {
	p := start(t)
	p.waitReady(10 * time.Second)
	before := p.metric("bloodbank_published_total")
	for _, name := range []string{"bloodbank_consumed_total", "bloodbank_retried_total", "bloodbank_parked_total",
		"bloodbank_deduplicated_total", "bloodbank_correlation_writes_failed_total", "bloodbank_confirmed_total"} {
		p.metric(name) // fails the test when it is not exported
	}

	code, body, err := p.post("/events/agent/thread/prompt", `{"provider": "anthropic", "prompt": "hello over HTTP"}`)
	if err != nil || code != http.StatusOK || body["event_type"] != "agent.thread.prompt" {
		t.Fatalf("POST /events/agent/thread/prompt = %d %v %v, want the published envelope", code, body, err)
	}
	promptID, err := uuid.Parse(fmt.Sprint(body["event_id"]))
	if err != nil {
		t.Fatalf("event_id: %v", err)
	}
	want := cqrs.SideEffectID(thread.RoutingKeyResponse, promptID, 0).String()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, err = p.get("/events/" + promptID.String() + "/correlation")
		children, _ := body["children"].([]any)
		if err == nil && code == http.StatusOK && len(children) == 1 && children[0] == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /events/%s/correlation = %d %v %v, want the response %s as its child", promptID, code, body, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.waitLog(time.Second, "command", func(l map[string]any) bool { return l["id"] == promptID.String() && l["outcome"] == "executed" })
	// The prompt and its response: two publishes.
	if after := p.metric("bloodbank_published_total"); after < before+2 {
		t.Errorf("bloodbank_published_total went from %v to %v, want +2", before, after)
	}
	if n := p.metric("bloodbank_consumed_total"); n < 1 {
		t.Errorf("bloodbank_consumed_total = %v, want at least 1", n)
	}

	code, body, err = p.post("/events/agent/thread/prompt", `{"provider": "anthropic"}`)
	if err != nil || code != http.StatusUnprocessableEntity {
		t.Errorf("POST an invalid prompt = %d %v %v, want 422", code, body, err)
	}

	p.signal(syscall.SIGTERM)
	if code := p.exit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if n := p.count("http stopped", nil); n != 1 {
		t.Errorf("the gateway did not shut down gracefully (%d 'http stopped' lines)", n)
	}
}

func TestCommandProcessor_tokenGuardsPosts(t *testing.T) {
	p := start(t, "HTTP_TOKEN=s3cret-token")
	p.waitReady(10 * time.Second)
	prompt := `{"provider": "anthropic", "prompt": "hi"}`
	if code, body, err := p.post("/events/agent/thread/prompt", prompt); err != nil || code != http.StatusUnauthorized {
		t.Errorf("POST without a token = %d %v %v, want 401", code, body, err)
	}
	if code, body, err := p.post("/events/agent/thread/prompt", prompt, "Authorization", "Bearer s3cret-token"); err != nil || code != http.StatusOK {
		t.Errorf("POST with the token = %d %v %v, want 200", code, body, err)
	}
	for _, l := range p.log() {
		if line, _ := json.Marshal(l); bytes.Contains(line, []byte("s3cret-token")) {
			t.Errorf("the token was logged: %s", line)
		}
	}
}

// BB_TRACING=stdout writes the spans of a command (its handle and execute
// spans, and the publish of its response) to stdout, one JSON object per
// line, all in the trace of the prompt.
func TestCommandProcessor_tracingToStdout(t *testing.T) {
	var stdout syncBuffer
	p := startWith(t, &stdout, "BB_TRACING=stdout", "BB_DEMO=1")
	p.waitLog(10*time.Second, "demo: correlation link recorded", nil)
	p.signal(syscall.SIGTERM)
	if code := p.exit(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	names := map[string]string{} // span name → trace id
	for _, line := range strings.Split(stdout.String(), "\n") {
		if line == "" {
			continue
		}
		var span struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		if err := json.Unmarshal([]byte(line), &span); err != nil {
			t.Fatalf("stdout line is not a JSON span: %v\n%s", err, line)
		}
		names[span.Name] = span.SpanContext.TraceID
	}
	trace := names["publish agent.thread.prompt"]
	for _, n := range []string{"publish agent.thread.prompt", "handle agent.thread.prompt", "execute agent.thread.prompt", "publish agent.thread.response"} {
		if id, ok := names[n]; !ok || id != trace {
			t.Errorf("span %q in trace %q, want it in trace %q (spans: %v)", n, id, trace, names)
		}
	}
}
