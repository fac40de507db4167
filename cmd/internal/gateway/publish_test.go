package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// sectionThreeExample is the example body of wire-contract section 3, as
// a Python producer puts it on the wire (compact JSON).
const sectionThreeExample = `{"event_id":"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11","event_type":"agent.thread.prompt",` +
	`"timestamp":"2026-01-29T10:00:00.123456Z","version":"1.0.0",` +
	`"source":{"host":"127.0.0.1","type":"manual","app":"http-client","meta":null},` +
	`"correlation_ids":[],"agent_context":null,` +
	`"payload":{"provider":"anthropic","model":"claude-sonnet-4","prompt":"Analyze this codebase",` +
	`"project":"bloodbank","working_dir":null,"domain":null,"tags":["analysis"]}}`

// sectionThreeIndented is the same example as the contract shows it.
const sectionThreeIndented = `{
  "event_id": "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11",
  "event_type": "agent.thread.prompt",
  "timestamp": "2026-01-29T10:00:00.123456Z",
  "version": "1.0.0",
  "source": {"host": "127.0.0.1", "type": "manual", "app": "http-client", "meta": null},
  "correlation_ids": [],
  "agent_context": null,
  "payload": {"provider": "anthropic", "model": "claude-sonnet-4", "prompt": "Analyze this codebase",
              "project": "bloodbank", "working_dir": null, "domain": null, "tags": ["analysis"]}
}`

func TestPublishCustom_pythonExampleIsPublishedByteForByte(t *testing.T) {
	for name, body := range map[string]string{"compact": sectionThreeExample, "indented": sectionThreeIndented} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			msgs := f.subscribe("#")

			rec := f.do(post("/events/custom", body))
			answer(t, rec, http.StatusOK)
			if got, want := rec.Body.String(), `{"event_id":"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11","status":"published"}`+"\n"; got != want {
				t.Errorf("answer = %s, want %s", got, want)
			}

			msg := receive(t, msgs)
			if got := string(envelope.OriginalBody(msg)); got != sectionThreeExample {
				t.Errorf("body on the bus:\n got %s\nwant %s", got, sectionThreeExample)
			}
			if got := msg.Metadata.Get(envelope.MetaRoutingKey); got != "agent.thread.prompt" {
				t.Errorf("routing key = %q, want agent.thread.prompt", got)
			}
			if msg.UUID != "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11" {
				t.Errorf("message id = %s, want the envelope's event_id", msg.UUID)
			}
		})
	}
}

func TestPublishCustom_unknownEventTypeIsPublishedUnvalidated(t *testing.T) {
	f := newFixture(t)
	msgs := f.subscribe("billing.#")
	body := strings.Replace(sectionThreeExample, `"agent.thread.prompt"`, `"billing.invoice.paid"`, 1)
	body = strings.Replace(body, `"provider":"anthropic",`, `"amount":120,"big":12345678901234567890,`, 1)

	answer(t, f.do(post("/events/custom", body)), http.StatusOK)

	msg := receive(t, msgs)
	if got := string(envelope.OriginalBody(msg)); got != body {
		t.Errorf("body on the bus:\n got %s\nwant %s", got, body)
	}
}

func TestPublishCustom_badEnvelope400(t *testing.T) {
	tests := []struct {
		name, body, want string
		problems         []string // paths
	}{
		{"missing event_type", strings.Replace(sectionThreeExample, `"event_type":"agent.thread.prompt",`, "", 1),
			"event_type is missing", []string{"event_type"}},
		{"empty event_type", strings.Replace(sectionThreeExample, `"agent.thread.prompt"`, `""`, 1),
			"event_type is missing", []string{"event_type"}},
		{"null event_type", strings.Replace(sectionThreeExample, `"agent.thread.prompt"`, `null`, 1),
			"event_type is missing", []string{"event_type"}},
		{"malformed JSON", `{"event_type": "agent.thread.prompt",`, "malformed JSON", nil},
		{"not an object", `["agent.thread.prompt"]`, "must be a whole envelope, a JSON object", nil},
		{"empty body", ``, "the body is empty", nil},
		{"bad event_id and timestamp", strings.NewReplacer(`"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11"`, `"nope"`,
			`"2026-01-29T10:00:00.123456Z"`, `"yesterday"`).Replace(sectionThreeExample),
			"not a valid v1 envelope", []string{"event_id", "timestamp"}},
		{"no payload", strings.Replace(sectionThreeExample, `"payload":`, `"body":`, 1),
			"payload: required", []string{"payload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			m := answer(t, f.do(post("/events/custom", tt.body)), http.StatusBadRequest)
			errorContains(t, m, tt.want)
			var paths []string
			ps, _ := m["problems"].([]any)
			for _, p := range ps {
				paths = append(paths, p.(map[string]any)["path"].(string))
			}
			if fmt.Sprint(paths) != fmt.Sprint(tt.problems) {
				t.Errorf("problem paths = %v, want %v (%v)", paths, tt.problems, m)
			}
		})
	}
}

func TestPublishAgentPrompt_receivedWithClientAddressAsSource(t *testing.T) {
	f := newFixture(t)
	msgs := f.subscribe("agent.thread.#")
	srv := httptest.NewServer(f.gw)
	defer srv.Close()

	payload := `{"provider": "anthropic", "prompt": "Is a < b & c > d?", "tags": ["x"]}`
	resp, err := http.Post(srv.URL+"/events/agent/thread/prompt", "application/json", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answered, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %s, err %v", resp.StatusCode, answered, err)
	}

	msg := receive(t, msgs)
	env, err := envelope.FromMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	// As Python's endpoint does, the answer is the envelope published.
	if onBus := envelope.OriginalBody(msg); !bytes.Equal(answered, onBus) {
		t.Errorf("answered\n%s\nbut published\n%s", answered, onBus)
	}
	wantSource := envelope.Source{Host: "127.0.0.1", Type: envelope.TriggerManual, App: "http-client"}
	if fmt.Sprint(env.Source) != fmt.Sprint(wantSource) {
		t.Errorf("source = %+v, want %+v", env.Source, wantSource)
	}
	if env.EventType != thread.RoutingKeyPrompt || len(env.CorrelationIDs) != 0 || env.AgentContext != nil {
		t.Errorf("envelope = %+v", env)
	}
	if want := `{"provider":"anthropic","prompt":"Is a < b & c > d?","tags":["x"]}`; string(env.Payload) != want {
		t.Errorf("payload = %s, want %s (as sent, compacted, not HTML-escaped)", env.Payload, want)
	}
	if body := string(envelope.OriginalBody(msg)); !strings.Contains(body, `"prompt":"Is a < b & c > d?"`) {
		t.Errorf("body on the bus escapes HTML: %s", body)
	}
}

func TestPublishAgentPrompt_invalidPayload422(t *testing.T) {
	f := newFixture(t)
	m := answer(t, f.do(post("/events/agent/thread/prompt", `{"tags": "x", "model": 3}`)), http.StatusUnprocessableEntity)
	errorContains(t, m, "not a valid agent.thread.prompt payload")
	want := map[string]bool{"payload.provider": true, "payload.prompt": true, "payload.tags": true, "payload.model": true}
	for _, p := range m["problems"].([]any) {
		p := p.(map[string]any)
		if p["message"] == "" {
			t.Errorf("problem without a message: %v", p)
		}
		delete(want, p["path"].(string))
	}
	if len(want) > 0 {
		t.Errorf("paths missing from problems: %v (got %v)", want, m["problems"])
	}
}

func TestPublishRoutingKey(t *testing.T) {
	tests := []struct {
		name, key, payload string
		status             int
		wantKey            string // routing key on the bus, for a 200
		wantErr            string
	}{
		{"fact", "agent.thread.response", `{"provider":"anthropic","response":"hi"}`, 200, "agent.thread.response", ""},
		{"command", "agent.thread.prompt", `{"provider":"anthropic","prompt":"hi"}`, 200, "agent.thread.prompt", ""},
		{"concrete key of a template", "artifact.created",
			`{"action":"created","kind":"doc","uri":"s3://b/k"}`, 200, "artifact.created", ""},
		{"template filled from the payload", "artifact.{action}",
			`{"action":"updated","kind":"doc","uri":"s3://b/k"}`, 200, "artifact.updated", ""},
		{"template key disagreeing with the payload", "artifact.created",
			`{"action":"deleted","kind":"doc","uri":"s3://b/k"}`, 422, "", "payload.action"},
		{"template with a bad placeholder value", "artifact.{action}",
			`{"action":"moved","kind":"doc","uri":"s3://b/k"}`, 422, "", "action"},
		{"invalid payload", "fireflies.transcript.failed", `{"failed_stage":"nope"}`, 422, "", "payload.failed_stage"},
		{"payload not an object", "agent.thread.response", `[1,2]`, 422, "", "payload"},
		{"unknown key", "billing.invoice.paid", `{}`, 404, "", `no event type is registered under routing key "billing.invoice.paid"`},
		{"enumeration value outside the template", "artifact.moved", `{}`, 404, "", "GET /schemas lists them"},
		{"malformed JSON", "agent.thread.response", `{"provider":`, 400, "", "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			msgs := f.subscribe("#")
			m := answer(t, f.do(post("/events/"+tt.key, tt.payload)), tt.status)
			if tt.status != 200 {
				if !strings.Contains(fmt.Sprint(m), tt.wantErr) {
					t.Errorf("answer %v does not mention %q", m, tt.wantErr)
				}
				return
			}
			msg := receive(t, msgs)
			if got := msg.Metadata.Get(envelope.MetaRoutingKey); got != tt.wantKey {
				t.Errorf("routing key = %q, want %q", got, tt.wantKey)
			}
			if msg.UUID != m["event_id"] {
				t.Errorf("event id on the bus %s, answered %v", msg.UUID, m["event_id"])
			}
			if got := msg.Metadata.Get(envelope.MetaSourceApp); got != "http-client" {
				t.Errorf("source app = %q", got)
			}
		})
	}
}

// A payload Python's lax mode would convert is published converted; with
// StrictTypes (BB_STRICT_TYPES) it is a 422 naming the field.
func TestPublishRoutingKey_laxTypes(t *testing.T) {
	payload := `{"media_file": "/m.mp4", "media_duration_seconds": "90", "media_type": "video"}`
	f := newFixture(t)
	msgs := f.subscribe("#")
	answer(t, f.do(post("/events/fireflies.transcript.upload", payload)), http.StatusOK)
	if got := string(receive(t, msgs).Payload); got != `{"media_file":"/m.mp4","media_duration_seconds":90,"media_type":"video"}` {
		t.Errorf("payload on the bus = %s, want the integer 90", got)
	}

	strict := newFixture(t, func(c *gateway.Config, _ *gateway.Deps) { c.StrictTypes = true })
	m := answer(t, strict.do(post("/events/fireflies.transcript.upload", payload)), http.StatusUnprocessableEntity)
	if !strings.Contains(fmt.Sprint(m["problems"]), "payload.media_duration_seconds") {
		t.Errorf("answer %v does not name payload.media_duration_seconds", m)
	}
}

func TestPost_contentType(t *testing.T) {
	tests := []struct {
		contentType string
		status      int
	}{
		{"application/json", 200},
		{"application/json; charset=utf-8", 200},
		{"Application/JSON", 200},
		{"application/vnd.github+json", 200},
		{"", 200}, // as FastAPI: no Content-Type is read as JSON
		{"text/plain", 415},
		{"application/x-www-form-urlencoded", 415},
		{"application/json; charset=latin-1", 415},
		{"garbage;;", 415},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			f := newFixture(t)
			f.subscribe("#")
			rec := f.do(request{method: "POST", path: "/events/custom", body: sectionThreeExample,
				header: map[string]string{"Content-Type": tt.contentType}})
			m := answer(t, rec, tt.status)
			if tt.status == 415 {
				errorContains(t, m, "application/json")
			}
		})
	}
}

func TestPost_bodyTooLarge413(t *testing.T) {
	f := newFixture(t)
	big := `{"provider":"x","prompt":"` + strings.Repeat("a", 1<<20) + `"}`
	t.Run("Content-Length", func(t *testing.T) {
		m := answer(t, f.do(post("/events/agent/thread/prompt", big)), http.StatusRequestEntityTooLarge)
		errorContains(t, m, "larger than 1048576 bytes")
		if m["limit_bytes"] != json.Number("1048576") {
			t.Errorf("limit_bytes = %v", m["limit_bytes"])
		}
	})
	t.Run("chunked", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/events/custom", bytes.NewReader([]byte(big)))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		f.gw.ServeHTTP(rec, req)
		answer(t, rec, http.StatusRequestEntityTooLarge)
	})
	t.Run("at the limit", func(t *testing.T) {
		f.subscribe("#")
		payload := `{"provider":"x","prompt":"`
		payload += strings.Repeat("a", 1<<20-len(payload)-2) + `"}`
		answer(t, f.do(post("/events/agent/thread/prompt", payload)), http.StatusOK)
	})
}

// A client that writes its whole body before it reads the answer, as
// Python's urllib does, gets the 413 rather than a broken pipe. The body
// takes longer to arrive than Go's server lingers after closing (about half
// a second), as a Python client's body does.
func TestPost_bodyTooLargeReachesAClientThatWritesFirst(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.gw)
	defer srv.Close()
	body := bytes.Repeat([]byte("a"), 2<<20)
	for i := range 3 {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /events/custom HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		for b := body; len(b) > 0; b = b[min(len(b), 64<<10):] {
			if _, err := conn.Write(b[:min(len(b), 64<<10)]); err != nil {
				t.Fatalf("request %d: the gateway closed while the body was being sent: %v", i, err)
			}
			time.Sleep(25 * time.Millisecond)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("request %d: no answer: %v", i, err)
		}
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("request %d: status %d, body %v (%v), want 413 with a JSON error", i, resp.StatusCode, m, err)
		}
		_ = conn.Close()
	}
}

func TestAuth(t *testing.T) {
	const token = "s3cret-token"
	f := newFixture(t, withToken(token))
	f.subscribe("#")
	tests := []struct {
		name, auth string
		status     int
	}{
		{"missing", "", 401},
		{"wrong", "Bearer nope", 401},
		{"prefix of the token", "Bearer s3cret", 401},
		{"not bearer", "Basic " + token, 401},
		{"no scheme", token, 401},
		{"right", "Bearer " + token, 200},
		{"scheme is case-insensitive", "bearer " + token, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/json"}
			if tt.auth != "" {
				h["Authorization"] = tt.auth
			}
			rec := f.do(request{method: "POST", path: "/events/custom", body: sectionThreeExample, header: h})
			m := answer(t, rec, tt.status)
			if tt.status == 401 {
				errorContains(t, m, "Authorization: Bearer")
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if strings.Contains(rec.Body.String(), token) {
					t.Error("the answer shows the token")
				}
			}
		})
	}
	t.Run("every POST", func(t *testing.T) {
		for _, p := range []string{"/events/agent/thread/prompt", "/events/agent.thread.prompt", "/events/nope", "/healthz"} {
			answer(t, f.do(post(p, `{}`)), http.StatusUnauthorized)
		}
	})
	t.Run("GETs stay open", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz", "/schemas", "/metrics"} {
			if rec := f.do(get(p)); rec.Code != http.StatusOK {
				t.Errorf("GET %s = %d", p, rec.Code)
			}
		}
	})
}

func TestPublish_brokerClosed503WithRetryHint(t *testing.T) {
	for _, tt := range []struct{ path, body, hint string }{
		{"/events/custom", sectionThreeExample, "the event_id is yours"},
		{"/events/agent/thread/prompt", `{"provider":"x","prompt":"y"}`, "to make retries idempotent"},
		{"/events/agent.thread.response", `{"provider":"x","response":"y"}`, "to make retries idempotent"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			f := newFixture(t)
			if err := f.broker.Close(); err != nil {
				t.Fatal(err)
			}
			rec := f.do(post(tt.path, tt.body))
			m := answer(t, rec, http.StatusServiceUnavailable)
			if got := rec.Header().Get("Retry-After"); got != "5" {
				t.Errorf("Retry-After = %q, want 5", got)
			}
			errorContains(t, m, "shutting down")
			if m["retryable"] != true || m["retry_after_seconds"] != json.Number("5") {
				t.Errorf("retry fields missing: %v", m)
			}
			if hint, _ := m["hint"].(string); !strings.Contains(hint, tt.hint) {
				t.Errorf("hint = %q, want it to contain %q", hint, tt.hint)
			}
			if _, err := uuid.Parse(fmt.Sprint(m["event_id"])); err != nil {
				t.Errorf("event_id = %v: %v", m["event_id"], err)
			}
		})
	}
}

func TestPublish_failuresMapToStatuses(t *testing.T) {
	tests := []struct {
		err    error
		status int
		want   string
	}{
		{fmt.Errorf("cannot publish: %w", transport.ErrNotConfirmed), 503, "did not confirm the event"},
		{fmt.Errorf("cannot publish: %w", transport.ErrUnroutable), 503, "no queue is bound to routing key \"agent.thread.prompt\""},
		{fmt.Errorf("cannot confirm: %w", context.DeadlineExceeded), 503, "within 10s"},
		{errors.New("dial tcp: connection refused"), 503, "unreachable"},
		{errors.Join(&envelope.InvalidError{Problems: []string{"source.host: required"}}), 400, "envelope is invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			f := newFixture(t, withPublisher(&fakePublisher{err: tt.err}))
			m := answer(t, f.do(post("/events/custom", sectionThreeExample)), tt.status)
			errorContains(t, m, tt.want)
		})
	}
}

func TestPublish_clientHangingUpDoesNotCancelThePublish(t *testing.T) {
	pub := &fakePublisher{}
	f := newFixture(t, withPublisher(pub))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/events/custom", strings.NewReader(sectionThreeExample))
	rec := httptest.NewRecorder()
	f.gw.ServeHTTP(rec, req)
	answer(t, rec, http.StatusOK)
	if err := *pub.ctxErr.Load(); err != nil {
		t.Errorf("the publish ran with a cancelled context: %v", err)
	}
	if !pub.hadDeadline.Load() {
		t.Error("the publish ran without a deadline")
	}
}
