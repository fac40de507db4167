package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/internal/testenv"
)

// startServe runs bb serve on a port the system picks (HTTP_PORT=0) and
// returns it with the address it listens on, read from its log.
func startServe(t *testing.T, r *rabbit, env ...string) (*process, string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(testenv.Redis(t))
	env = append(append(r.env(), "HTTP_HOST=127.0.0.1", "HTTP_PORT=0", "REDIS_HOST="+host, "REDIS_PORT="+port), env...)
	p := startBB(t, run{env: env}, "serve")
	p.waitStderr("serve: gateway listening")
	for _, line := range strings.Split(p.stderrText(), "\n") {
		var entry struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serve: gateway listening" {
			return p, entry.Addr
		}
	}
	t.Fatalf("bb serve did not log its address\n%s", p.stderrText())
	return nil, ""
}

// httpDo sends a request and decodes its JSON answer.
func httpDo(t *testing.T, method, url, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: the answer is not JSON: %v", method, url, err)
	}
	return resp.StatusCode, out
}

// bb serve publishes what it is posted on the exchange, records the link
// of an event with parents as the Python publisher does, answers its
// probes, and ends with exit 0 on SIGTERM.
func TestServe_publishesWhatItIsPostedAndEndsOnSIGTERM(t *testing.T) {
	r := newRabbit(t)
	prompts := r.bindQueue("agent.thread.prompt")
	facts := r.bindQueue("artifact.created")
	p, addr := startServe(t, r, "SERVICE_NAME=bb_serve_test")
	base := "http://" + addr

	if code, body := httpDo(t, http.MethodGet, base+"/healthz", ""); code != http.StatusOK || body["service"] != "bb_serve_test" {
		t.Errorf("GET /healthz = %d %v", code, body)
	}
	if code, body := httpDo(t, http.MethodGet, base+"/readyz", ""); code != http.StatusOK {
		t.Errorf("GET /readyz = %d %v, want 200 with RabbitMQ and Redis up", code, body)
	}

	code, body := httpDo(t, http.MethodPost, base+"/events/agent/thread/prompt", `{"provider": "anthropic", "prompt": "hello from curl"}`)
	if code != http.StatusOK || body["event_type"] != "agent.thread.prompt" {
		t.Fatalf("POST /events/agent/thread/prompt = %d %v, want the published envelope", code, body)
	}
	d := r.get(prompts)
	env, err := envelope.Decode(d.Body)
	if err != nil {
		t.Fatalf("the published body is not an envelope: %v\n%s", err, d.Body)
	}
	if d.MessageId != body["event_id"] || env.EventID.String() != body["event_id"] || env.Source.App != "http-client" ||
		env.Source.Host != "127.0.0.1" || !strings.Contains(string(env.Payload), "hello from curl") {
		t.Errorf("published %s %+v, want event %v from http-client@127.0.0.1", d.MessageId, env, body["event_id"])
	}

	// A whole envelope with a parent: published as is, its link recorded.
	parent, child := uuid.New(), uuid.New()
	client := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() {
		_ = client.Del(context.Background(), correlation.DefaultKeyPrefix+"forward:"+child.String(), correlation.DefaultKeyPrefix+"reverse:"+parent.String()).Err()
		_ = client.Close()
	})
	envelope := fmt.Sprintf(`{"event_id":"%s","event_type":"artifact.created","timestamp":"2026-01-29T10:00:00.123456Z","version":"1.0.0","source":{"host":"ci","type":"hook","app":null,"meta":null},"correlation_ids":["%s"],"agent_context":null,"payload":{"action":"created","kind":"report","uri":"s3://r"}}`, child, parent)
	if code, body := httpDo(t, http.MethodPost, base+"/events/custom", envelope); code != http.StatusOK || body["event_id"] != child.String() {
		t.Fatalf("POST /events/custom = %d %v", code, body)
	}
	if d := r.get(facts); string(d.Body) != envelope {
		t.Errorf("POST /events/custom published\n%s\nwant the envelope as posted\n%s", d.Body, envelope)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := httpDo(t, http.MethodGet, base+"/events/"+parent.String()+"/correlation", "")
		if children, _ := body["children"].([]any); code == http.StatusOK && len(children) == 1 && children[0] == child.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /events/%s/correlation = %d %v, want %s as its child", parent, code, body, child)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if res := p.wait(); res.code != 0 {
		t.Fatalf("want exit 0 on SIGTERM\n%s", res)
	}
}

func TestServe_tokenGuardsEveryPost(t *testing.T) {
	r := newRabbit(t)
	prompts := r.bindQueue("agent.thread.prompt")
	p, addr := startServe(t, r, "HTTP_TOKEN=serve-test-token")
	url := "http://" + addr + "/events/agent/thread/prompt"
	prompt := `{"provider": "anthropic", "prompt": "hi"}`
	if code, body := httpDo(t, http.MethodPost, url, prompt); code != http.StatusUnauthorized {
		t.Errorf("POST without a token = %d %v, want 401", code, body)
	}
	if code, body := httpDo(t, http.MethodPost, url, prompt, "Authorization", "Bearer wrong-token"); code != http.StatusUnauthorized {
		t.Errorf("POST with a wrong token = %d %v, want 401", code, body)
	}
	if code, body := httpDo(t, http.MethodPost, url, prompt, "Authorization", "Bearer serve-test-token"); code != http.StatusOK {
		t.Errorf("POST with the token = %d %v, want 200", code, body)
	}
	if code, _ := httpDo(t, http.MethodGet, "http://"+addr+"/healthz", ""); code != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200: probes need no token", code)
	}
	r.get(prompts) // exactly the one authorised publish
	if d, ok, _ := r.ch.Get(prompts, true); ok {
		t.Errorf("a refused POST was published: %s", d.Body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	res := p.wait()
	if res.code != 0 {
		t.Fatalf("want exit 0 on SIGINT\n%s", res)
	}
	if strings.Contains(res.stderr+res.stdout, "serve-test-token") {
		t.Errorf("the token was printed\n%s", res)
	}
}

// Without a broker bb serve does not start: exit 2, as every command that
// needs one.
func TestServe_withoutRabbitURLExits2(t *testing.T) {
	res := bb(t, run{env: []string{"HTTP_PORT=0"}}, "serve")
	if res.code != 2 || !strings.Contains(res.stderr, "RABBIT_URL is not set") {
		t.Errorf("want exit 2 naming RABBIT_URL\n%s", res)
	}
}
