package asyncapi_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/33god/bloodbank-go/cmd/internal/asyncapi"
	"github.com/33god/bloodbank-go/domains"
)

// doc is the generated document, decoded.
type doc map[string]any

func generate(t *testing.T, reg *domains.Registry, opts asyncapi.Options) (doc, []byte) {
	t.Helper()
	raw, err := asyncapi.Generate(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	var d doc
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	return d, raw
}

// at walks the document along keys; it fails the test when one is missing.
func (d doc) at(t *testing.T, keys ...string) any {
	t.Helper()
	var v any = map[string]any(d)
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s is not an object", strings.Join(keys[:i], "/"))
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("%s is missing", strings.Join(keys[:i+1], "/"))
		}
	}
	return v
}

func (d doc) str(t *testing.T, keys ...string) string {
	t.Helper()
	s, ok := d.at(t, keys...).(string)
	if !ok {
		t.Fatalf("%s is not a string", strings.Join(keys, "/"))
	}
	return s
}

func TestGenerate_oneChannelPerRoutingKey(t *testing.T) {
	reg := registry(t)
	d, _ := generate(t, reg, asyncapi.Options{})
	if got := d.str(t, "asyncapi"); got != "3.0.0" {
		t.Errorf("asyncapi = %q, want 3.0.0", got)
	}
	if got := d.str(t, "info", "title"); got != "Bloodbank" {
		t.Errorf("info.title = %q, want Bloodbank", got)
	}
	channels := d.at(t, "channels").(map[string]any)
	events := reg.Events(domains.Filter{})
	if len(channels) != len(events) {
		t.Errorf("%d channels for %d registered types", len(channels), len(events))
	}
	var addresses []string
	for _, c := range channels {
		addresses = append(addresses, c.(map[string]any)["address"].(string))
	}
	for _, e := range events {
		if !slices.Contains(addresses, e.RoutingKey()) {
			t.Errorf("no channel has the address %s", e.RoutingKey())
		}
	}
	// The third-party domain registered next to the catalogue is described.
	if got := d.str(t, "channels", "billing.invoice.paid", "address"); got != "billing.invoice.paid" {
		t.Errorf("billing.invoice.paid address = %q", got)
	}
}

func TestGenerate_topicExchangeBinding(t *testing.T) {
	d, _ := generate(t, registry(t), asyncapi.Options{ExchangeName: "test.events", BrokerURL: "amqp://bb:s3cret@rabbit.internal:5672/prod"})
	got := d.at(t, "channels", "fireflies.transcript.ready", "bindings", "amqp")
	want := map[string]any{
		"is": "routingKey",
		"exchange": map[string]any{
			"name": "test.events", "type": "topic", "durable": true, "autoDelete": false, "vhost": "prod",
		},
		"bindingVersion": "0.3.0",
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("amqp channel binding = %s, want %s", g, w)
	}
}

func TestGenerate_server(t *testing.T) {
	for _, tc := range []struct {
		name, url, server, host string
	}{
		{"no RABBIT_URL", "", "localhost", "localhost:5672"},
		{"credentials removed", "amqp://bb:s3cret@rabbit.internal:5672/", "rabbit.internal", "rabbit.internal:5672"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, raw := generate(t, registry(t), asyncapi.Options{BrokerURL: tc.url})
			servers := d.at(t, "servers").(map[string]any)
			if len(servers) != 1 {
				t.Fatalf("servers = %v, want one", servers)
			}
			if got := d.str(t, "servers", tc.server, "host"); got != tc.host {
				t.Errorf("host = %q, want %q", got, tc.host)
			}
			if got := d.str(t, "servers", tc.server, "protocol"); got != "amqp" {
				t.Errorf("protocol = %q, want amqp", got)
			}
			if got := d.str(t, "servers", tc.server, "protocolVersion"); got != "0-9-1" {
				t.Errorf("protocolVersion = %q, want 0-9-1", got)
			}
			if bytes.Contains(raw, []byte("s3cret")) || bytes.Contains(raw, []byte("bb:")) {
				t.Error("the document holds the broker's credentials")
			}
		})
	}
	if _, err := asyncapi.Generate(registry(t), asyncapi.Options{BrokerURL: "://bb:s3cret@"}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad URL: err = %v, want an error without the password", err)
	}
}

func TestGenerate_commandsAndFacts(t *testing.T) {
	d, _ := generate(t, registry(t), asyncapi.Options{})
	for _, tc := range []struct {
		channel, action, kind, title, result, reply string
	}{
		{"agent.thread.prompt", "receive", "command", "Command: agent.thread.prompt", "agent.thread.response", "#/channels/agent.thread.response"},
		{"billing.invoice.charge", "receive", "command", "Command: billing.invoice.charge", "billing.invoice.paid", "#/channels/billing.invoice.paid"},
		{"fireflies.transcript.ready", "send", "fact", "Fact: fireflies.transcript.ready", "", ""},
		{"billing.invoice.paid", "send", "fact", "Fact: billing.invoice.paid", "", ""},
	} {
		t.Run(tc.channel, func(t *testing.T) {
			op := d.at(t, "operations", tc.channel).(map[string]any)
			if got := op["action"]; got != tc.action {
				t.Errorf("action = %v, want %s", got, tc.action)
			}
			if got := op["x-bloodbank-kind"]; got != tc.kind {
				t.Errorf("x-bloodbank-kind = %v, want %s", got, tc.kind)
			}
			if got := op["title"]; got != tc.title {
				t.Errorf("title = %v, want %s", got, tc.title)
			}
			if got, _ := op["x-bloodbank-result"].(string); got != tc.result {
				t.Errorf("x-bloodbank-result = %q, want %q", got, tc.result)
			}
			if got := d.str(t, "components", "messages", tc.channel, "x-bloodbank-kind"); got != tc.kind {
				t.Errorf("message x-bloodbank-kind = %q, want %s", got, tc.kind)
			}
			if tc.reply == "" {
				if op["reply"] != nil {
					t.Errorf("a fact has a reply: %v", op["reply"])
				}
				return
			}
			if got := d.str(t, "operations", tc.channel, "reply", "channel", "$ref"); got != tc.reply {
				t.Errorf("reply channel = %q, want %s", got, tc.reply)
			}
		})
	}
}

func TestGenerate_templateParameter(t *testing.T) {
	d, _ := generate(t, registry(t), asyncapi.Options{})
	ch := "artifact._action_"
	if got := d.str(t, "channels", ch, "address"); got != "artifact.{action}" {
		t.Errorf("address = %q, want artifact.{action}", got)
	}
	if got := d.str(t, "channels", ch, "parameters", "action", "location"); got != "$message.payload#/payload/action" {
		t.Errorf("location = %q", got)
	}
	enum := mustJSON(t, d.at(t, "channels", ch, "parameters", "action", "enum"))
	if want := `["created","updated","deleted"]`; enum != want {
		t.Errorf("enum = %s, want %s", enum, want)
	}
	example := d.at(t, "components", "messages", ch, "examples").([]any)[0].(map[string]any)["payload"].(map[string]any)
	if got, _ := example["event_type"].(string); !strings.HasPrefix(got, "artifact.") || strings.Contains(got, "{") {
		t.Errorf("example event_type = %q, want a concrete artifact key", got)
	}
}

// TestGenerate_examplesMatchTheirSchemas holds each message's example
// envelope, and a body from wire-contract section 3, to the message payload
// schema, since the AsyncAPI parser does not validate examples.
func TestGenerate_examplesMatchTheirSchemas(t *testing.T) {
	d, raw := generate(t, registry(t), asyncapi.Options{})
	var resource any
	if err := json.Unmarshal(raw, &resource); err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("asyncapi.json", resource); err != nil {
		t.Fatal(err)
	}
	compile := func(msg string) *jsonschema.Schema {
		t.Helper()
		s, err := c.Compile("asyncapi.json#/components/messages/" + msg + "/payload")
		if err != nil {
			t.Fatalf("cannot compile the payload schema of %s: %v", msg, err)
		}
		return s
	}
	for name, m := range d.at(t, "components", "messages").(map[string]any) {
		s := compile(name)
		for _, ex := range m.(map[string]any)["examples"].([]any) {
			if err := s.Validate(ex.(map[string]any)["payload"]); err != nil {
				t.Errorf("example of %s does not match its schema: %v", name, err)
			}
		}
	}

	wire := `{"event_id": "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11", "event_type": "agent.thread.prompt",
	  "timestamp": "2026-01-29T10:00:00.123456Z", "version": "1.0.0",
	  "source": {"host": "127.0.0.1", "type": "manual", "app": "http-client", "meta": null},
	  "correlation_ids": [], "agent_context": null,
	  "payload": {"provider": "anthropic", "model": "claude-sonnet-4", "prompt": "Analyze this codebase",
	    "project": "bloodbank", "working_dir": null, "domain": null, "tags": ["analysis"]}}`
	var body any
	if err := json.Unmarshal([]byte(wire), &body); err != nil {
		t.Fatal(err)
	}
	s := compile("agent.thread.prompt")
	if err := s.Validate(body); err != nil {
		t.Errorf("the wire contract's example body does not match: %v", err)
	}
	body.(map[string]any)["payload"].(map[string]any)["prompt"] = 42
	if err := s.Validate(body); err == nil {
		t.Error("a prompt of 42 matches: the envelope's payload is not narrowed to the type's schema")
	}
}

func TestGenerate_deterministic(t *testing.T) {
	_, a := generate(t, registry(t), asyncapi.Options{})
	_, b := generate(t, registry(t), asyncapi.Options{})
	if !bytes.Equal(a, b) {
		t.Error("two documents of the same registry differ")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
