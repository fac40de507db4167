package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains"
)

func lookup(t *testing.T, f *fixture, name string) *domains.EventType {
	t.Helper()
	e, err := f.events.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestHealthz_answersAsPython(t *testing.T) {
	f := newFixture(t)
	rec := f.do(get("/healthz"))
	answer(t, rec, http.StatusOK)
	if got, want := rec.Body.String(), `{"ok":true,"service":"gateway_test"}`+"\n"; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}

func TestReadyz(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		f := newFixture(t)
		m := answer(t, f.do(get("/readyz")), http.StatusOK)
		if m["ok"] != true || m["checks"].(map[string]any)["broker"] != "ok" {
			t.Errorf("answer = %v", m)
		}
	})
	t.Run("redis and broker unreachable", func(t *testing.T) {
		f := newFixture(t, func(_ *gateway.Config, d *gateway.Deps) {
			client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
			t.Cleanup(func() { _ = client.Close() })
			d.Checks = []gateway.Check{
				{Name: "broker", Func: func(context.Context) error { return errors.New("RabbitMQ is not connected") }},
				gateway.RedisCheck(client),
			}
		})
		m := answer(t, f.do(get("/readyz")), http.StatusServiceUnavailable)
		errorContains(t, m, "broker and redis unreachable")
		checks := m["checks"].(map[string]any)
		if checks["broker"] != "RabbitMQ is not connected" || !strings.Contains(checks["redis"].(string), "127.0.0.1:1") {
			t.Errorf("checks = %v", checks)
		}
	})
	t.Run("redis goes away", func(t *testing.T) {
		store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		client := redis.NewClient(&redis.Options{Addr: store.Addr(), MaxRetries: -1})
		defer client.Close()
		f := newFixture(t, func(_ *gateway.Config, d *gateway.Deps) {
			d.Checks = append(d.Checks, gateway.RedisCheck(client))
		})
		answer(t, f.do(get("/readyz")), http.StatusOK)
		store.Server().Close()
		m := answer(t, f.do(get("/readyz")), http.StatusServiceUnavailable)
		if got := m["failing"]; len(got.([]any)) != 1 || got.([]any)[0] != "redis" {
			t.Errorf("failing = %v, want [redis]", got)
		}
	})
}

func TestSchemas_list(t *testing.T) {
	f := newFixture(t)
	m := answer(t, f.do(get("/schemas")), http.StatusOK)
	events := m["events"].([]any)
	if len(events) != len(f.events.Events(domains.Filter{})) {
		t.Errorf("%d events listed", len(events))
	}
	var prompt map[string]any
	for _, e := range events {
		if e := e.(map[string]any); e["routing_key"] == "agent.thread.prompt" {
			prompt = e
		}
	}
	want := map[string]any{"routing_key": "agent.thread.prompt", "domain": "agent/thread", "kind": "command", "name": "thread.Prompt"}
	for k, v := range want {
		if prompt[k] != v {
			t.Errorf("agent.thread.prompt %s = %v, want %v", k, prompt[k], v)
		}
	}

	m = answer(t, f.do(get("/schemas?kind=command")), http.StatusOK)
	for _, e := range m["events"].([]any) {
		if e.(map[string]any)["kind"] != "command" {
			t.Errorf("kind=command listed %v", e)
		}
	}
	m = answer(t, f.do(get("/schemas?domain=artifact")), http.StatusOK)
	if len(m["events"].([]any)) == 0 {
		t.Error("domain=artifact listed nothing")
	}
	errorContains(t, answer(t, f.do(get("/schemas?kind=query")), http.StatusBadRequest), "use command, event or fact")
}

func TestSchemas_show(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"agent.thread.prompt", "artifact.created", "artifact.{action}", "thread.Prompt"} {
		t.Run(name, func(t *testing.T) {
			m := answer(t, f.do(get("/schemas/"+strings.ReplaceAll(strings.ReplaceAll(name, "{", "%7B"), "}", "%7D"))), http.StatusOK)
			schema, _ := m["schema"].(map[string]any)
			if schema["$schema"] == nil || schema["properties"] == nil {
				t.Errorf("schema = %v", m["schema"])
			}
			ex, err := json.Marshal(m["example"])
			if err != nil {
				t.Fatal(err)
			}
			key := m["routing_key"].(string)
			if strings.Contains(key, "{") {
				if key, err = lookup(t, f, key).ResolveRoutingKey(ex); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.events.Validate(key, ex); err != nil {
				t.Errorf("the example does not validate: %v", err)
			}
		})
	}
	m := answer(t, f.do(get("/schemas/billing.invoice.paid")), http.StatusNotFound)
	errorContains(t, m, `no event type is registered as "billing.invoice.paid"`)
}

func TestCorrelation(t *testing.T) {
	parent, child, grandchild := uuid.New(), uuid.New(), uuid.New()
	t.Run("dump", func(t *testing.T) {
		f := newFixture(t)
		if err := f.store.Record(context.Background(),
			correlation.Link{Child: child, Parents: []uuid.UUID{parent}, Metadata: map[string]any{"why": "test"}},
			correlation.Link{Child: grandchild, Parents: []uuid.UUID{child}}); err != nil {
			t.Fatal(err)
		}
		rec := f.do(get("/events/" + child.String() + "/correlation"))
		answer(t, rec, http.StatusOK)
		var dump correlation.Dump
		if err := json.Unmarshal(rec.Body.Bytes(), &dump); err != nil {
			t.Fatal(err)
		}
		if dump.EventID != child || len(dump.Parents) != 1 || dump.Parents[0] != parent ||
			len(dump.Descendants) != 1 || dump.Descendants[0] != grandchild || dump.Metadata["why"] != "test" {
			t.Errorf("dump = %+v", dump)
		}
	})
	t.Run("nothing recorded", func(t *testing.T) {
		f := newFixture(t)
		rec := f.do(get("/events/" + parent.String() + "/correlation"))
		answer(t, rec, http.StatusOK)
		want := `{"event_id":"` + parent.String() + `","parents":[],"children":[],"ancestors":[],"descendants":[],"metadata":null,` +
			`"cost":{"root":"` + parent.String() + `","tokens_used":0,"duration_ms":0,"events":0,"by_agent":{}}}` + "\n"
		if rec.Body.String() != want {
			t.Errorf("body = %s, want %s", rec.Body, want)
		}
	})
	t.Run("cost of the root", func(t *testing.T) {
		f := newFixture(t)
		tokens := &correlation.Cost{Agent: "planner", TokensUsed: 120, DurationMS: 900}
		if err := f.store.Record(context.Background(),
			correlation.Link{Child: child, Parents: []uuid.UUID{parent}},
			correlation.Link{Child: grandchild, Parents: []uuid.UUID{child}, Cost: tokens}); err != nil {
			t.Fatal(err)
		}
		rec := f.do(get("/events/" + grandchild.String() + "/correlation"))
		answer(t, rec, http.StatusOK)
		var dump correlation.Dump
		if err := json.Unmarshal(rec.Body.Bytes(), &dump); err != nil {
			t.Fatal(err)
		}
		want := correlation.CostTotals{Root: parent, TokensUsed: 120, DurationMS: 900, Events: 1,
			ByAgent: map[string]correlation.AgentCost{"planner": {TokensUsed: 120, DurationMS: 900, Events: 1}}}
		if dump.Cost == nil || !reflect.DeepEqual(*dump.Cost, want) || dump.EventID != grandchild {
			t.Errorf("cost = %+v, want %+v beside the dump", dump.Cost, want)
		}
	})
	t.Run("malformed id", func(t *testing.T) {
		f := newFixture(t)
		errorContains(t, answer(t, f.do(get("/events/not-a-uuid/correlation")), http.StatusBadRequest), `"not-a-uuid" is not a UUID`)
	})
	t.Run("redis unreachable", func(t *testing.T) {
		f := newFixture(t)
		f.store.Server().Close()
		rec := f.do(get("/events/" + child.String() + "/correlation"))
		errorContains(t, answer(t, rec, http.StatusServiceUnavailable), "Redis is unreachable")
		if rec.Header().Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	})
	t.Run("no store", func(t *testing.T) {
		f := newFixture(t, func(_ *gateway.Config, d *gateway.Deps) { d.Correlation = nil })
		errorContains(t, answer(t, f.do(get("/events/"+child.String()+"/correlation")), http.StatusNotImplemented), "not configured")
	})
}

func TestRouting_jsonErrors(t *testing.T) {
	f := newFixture(t)
	m := answer(t, f.do(get("/nope")), http.StatusNotFound)
	errorContains(t, m, "no endpoint GET /nope")
	if len(m["endpoints"].([]any)) < 9 {
		t.Errorf("endpoints = %v", m["endpoints"])
	}
	rec := f.do(get("/events/custom"))
	m = answer(t, rec, http.StatusMethodNotAllowed)
	if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "POST") {
		t.Errorf("Allow = %q", allow)
	}
	errorContains(t, m, "GET is not allowed on /events/custom")
	answer(t, f.do(request{method: "DELETE", path: "/healthz"}), http.StatusMethodNotAllowed)
}

func TestNew_reportsEveryMissingDependency(t *testing.T) {
	_, err := gateway.New(gateway.Config{MaxBodyBytes: -1, Token: "two words"}, gateway.Deps{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Deps.Publisher is required", "Deps.Events is required", "MaxBodyBytes", "Token (HTTP_TOKEN) contains white space"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "two words") {
		t.Error("the error shows the token")
	}
}

func TestServe_shutsDownGracefully(t *testing.T) {
	pub := &fakePublisher{entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, withPublisher(pub))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.gw.Serve(ctx, l) }()

	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Post("http://"+l.Addr().String()+"/events/custom", "application/json", strings.NewReader(sectionThreeExample))
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	<-pub.entered // the publish is in flight
	cancel()      // shut down while it runs
	select {
	case err := <-served:
		t.Fatalf("Serve returned before the in-flight request finished: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(pub.release)
	if r := <-done; r.err != nil || r.status != http.StatusOK {
		t.Fatalf("in-flight request: status %d, err %v", r.status, r.err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v, want nil after a graceful shutdown", err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

func TestHTTPServer_hasTimeouts(t *testing.T) {
	f := newFixture(t)
	srv := f.gw.HTTPServer(":0")
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Errorf("timeouts: %v %v %v %v", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
}
