package main_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// decodeOneEnvelope reads stdout that must hold exactly one line, a v1
// envelope.
func decodeOneEnvelope(t *testing.T, res result) envelope.Envelope {
	t.Helper()
	ls := lines(res.stdout)
	if len(ls) != 1 {
		t.Fatalf("want exactly one line on stdout\n%s", res)
	}
	env, err := envelope.Decode([]byte(ls[0]))
	if err != nil {
		t.Fatalf("stdout is not a v1 envelope: %v\n%s", err, res)
	}
	return env
}

func TestPublish_dryRunPrintsTheExactEnvelope(t *testing.T) {
	eventID := uuid.New()
	parents := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	payload := `{"provider": "anthropic", "prompt": "Is <b> & </b> escaped?", "tags": ["x"]}`
	// RABBIT_URL points at a closed port: a dry run must not even try it.
	res := mustSucceed(t, run{env: []string{"RABBIT_URL=amqp://guest:guest@127.0.0.1:1/"}},
		"publish", "agent.thread.prompt", "--json", payload, "--dry-run",
		"--event-id", eventID.String(),
		"--correlation-id", parents[0].String(),
		"--correlation-id", parents[1].String()+","+parents[2].String(),
		"--source-type", "hook", "--source-app", "ci-pipeline", "--source-host", "build-7")
	env := decodeOneEnvelope(t, res)
	if env.EventID != eventID {
		t.Errorf("event_id = %s, want %s", env.EventID, eventID)
	}
	if env.EventType != "agent.thread.prompt" || env.Version != envelope.Version {
		t.Errorf("event_type, version = %q, %q", env.EventType, env.Version)
	}
	if !slices.Equal(env.CorrelationIDs, parents) {
		t.Errorf("correlation_ids = %v, want %v", env.CorrelationIDs, parents)
	}
	want := envelope.Source{Host: "build-7", Type: envelope.TriggerHook, App: "ci-pipeline"}
	if env.Source.Host != want.Host || env.Source.Type != want.Type || env.Source.App != want.App || env.Source.Meta != nil {
		t.Errorf("source = %+v, want %+v", env.Source, want)
	}
	if age := time.Since(env.Timestamp); age < 0 || age > time.Minute {
		t.Errorf("timestamp %s is not now", env.Timestamp)
	}
	var got, sent map[string]any
	if err := json.Unmarshal(env.Payload, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(payload), &sent)
	if g, s := mustJSON(t, got), mustJSON(t, sent); g != s {
		t.Errorf("payload = %s, want %s", g, s)
	}
	// The envelope codec's bytes, not json.Marshal's: no HTML escaping.
	if !strings.Contains(res.stdout, "Is <b> & </b> escaped?") {
		t.Errorf("the payload text was escaped\n%s", res)
	}
	if strings.Contains(res.stderr, "RabbitMQ") {
		t.Errorf("a dry run tried the broker\n%s", res)
	}
}

func TestPublish_dryRunDefaults(t *testing.T) {
	res := mustSucceed(t, run{}, "publish", "agent.thread.prompt", "--mock", "--dry-run")
	env := decodeOneEnvelope(t, res)
	if env.Source.App != "bloodbank-cli" || env.Source.Type != envelope.TriggerManual || env.Source.Host != envelope.Hostname() {
		t.Errorf("source = %+v, want app bloodbank-cli, type manual, host %s", env.Source, envelope.Hostname())
	}
	if env.EventID.Version() != 4 || len(env.CorrelationIDs) != 0 || env.AgentContext != nil {
		t.Errorf("want a random v4 id, no parents, no agent context: %+v", env)
	}
	if !strings.Contains(res.stdout, `"correlation_ids":[]`) {
		t.Errorf("correlation_ids must be [] on the wire\n%s", res)
	}
}

// --mock sends the catalogue's example for every routing key of every
// registered type, including each expansion of a template, and what it
// sends validates.
func TestPublish_mockDryRunValidatesForEveryRoutingKey(t *testing.T) {
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, et := range reg.Events(domains.Filter{}) {
		for _, key := range et.RoutingKeys() {
			n++
			res := mustSucceed(t, run{}, "publish", key, "--mock", "--dry-run")
			env := decodeOneEnvelope(t, res)
			if env.EventType != key {
				t.Errorf("bb publish %s --mock: event_type %q", key, env.EventType)
			}
			if err := reg.Validate(key, env.Payload); err != nil {
				t.Errorf("bb publish %s --mock: payload does not validate: %v", key, err)
			}
		}
	}
	if n < 26 {
		t.Errorf("only %d routing keys were tried; the catalogue has at least 26", n)
	}
}

func TestPublish_resolvesNamesAndTemplates(t *testing.T) {
	tests := []struct {
		args    []string
		wantKey string
	}{
		{[]string{"fireflies.TranscriptUpload", "--mock"}, "fireflies.transcript.upload"},
		{[]string{"FirefliesTranscriptUploadPayload", "--mock"}, "fireflies.transcript.upload"},
		{[]string{"artifact.{action}", "--json", `{"action": "created", "kind": "transcript", "uri": "s3://a/b"}`}, "artifact.created"},
		{[]string{"artifact.{action}", "--json", `{"action": "deleted", "kind": "transcript", "uri": "s3://a/b"}`}, "artifact.deleted"},
		{[]string{"artifact.Changed", "--json", `{"action": "updated", "kind": "transcript", "uri": "s3://a/b"}`}, "artifact.updated"},
		{[]string{"artifact.{action}", "--mock"}, "artifact.created"},
	}
	for _, tt := range tests {
		res := mustSucceed(t, run{}, append([]string{"publish", "--dry-run"}, tt.args...)...)
		if env := decodeOneEnvelope(t, res); env.EventType != tt.wantKey {
			t.Errorf("bb publish %s: event_type %q, want %q", strings.Join(tt.args, " "), env.EventType, tt.wantKey)
		}
	}
}

func TestPublish_payloadSources(t *testing.T) {
	payload := `{"provider": "anthropic", "prompt": "from a file"}`
	file := writeFile(t, "payload.json", "\n  "+payload+"\n")
	for name, r := range map[string]struct {
		run  run
		args []string
	}{
		"--json text":      {run{}, []string{"--json", payload}},
		"--json @file":     {run{}, []string{"--json", "@" + file}},
		"--json -":         {run{stdin: payload}, []string{"--json", "-"}},
		"--payload-file":   {run{}, []string{"--payload-file", file}},
		"--payload-file -": {run{stdin: payload}, []string{"--payload-file", "-"}},
	} {
		res := bb(t, r.run, append([]string{"publish", "agent.thread.prompt", "--dry-run"}, r.args...)...)
		if res.code != 0 {
			t.Errorf("%s: want exit 0\n%s", name, res)
			continue
		}
		env := decodeOneEnvelope(t, res)
		if !strings.Contains(string(env.Payload), `"prompt":"from a file"`) {
			t.Errorf("%s: payload %s", name, env.Payload)
		}
	}
}

// A whole envelope is published as is: the dry run of a dry run's output
// prints the same envelope.
func TestPublish_envelopeIsPublishedAsIs(t *testing.T) {
	first := mustSucceed(t, run{}, "publish", "fireflies.transcript.ready", "--mock", "--dry-run",
		"--correlation-id", uuid.NewString(), "--source-app", "original-app")
	file := writeFile(t, "envelope.json", first.stdout)
	for name, r := range map[string]struct {
		run  run
		args []string
	}{
		"--envelope-json text":     {run{}, []string{"--envelope-json", first.stdout}},
		"--envelope-json -":        {run{stdin: first.stdout}, []string{"--envelope-json", "-"}},
		"--envelope-json @file":    {run{}, []string{"--envelope-json", "@" + file}},
		"--envelope-file":          {run{}, []string{"--envelope-file", file}},
		"--envelope-file with key": {run{}, []string{"fireflies.transcript.ready", "--envelope-file", file}},
	} {
		res := bb(t, r.run, append([]string{"publish", "--dry-run"}, r.args...)...)
		if res.code != 0 {
			t.Errorf("%s: want exit 0\n%s", name, res)
			continue
		}
		if res.stdout != first.stdout {
			t.Errorf("%s: the envelope changed\nwant %s\ngot  %s", name, first.stdout, res.stdout)
		}
	}
	res := bb(t, run{}, "publish", "agent.thread.prompt", "--envelope-file", file, "--dry-run")
	if res.code != 1 || !strings.Contains(res.stderr, `differs from the envelope's event_type "fireflies.transcript.ready"`) {
		t.Errorf("a key that contradicts the envelope: want exit 1\n%s", res)
	}
	// The envelope's payload is validated like any other.
	var raw map[string]any
	_ = json.Unmarshal([]byte(first.stdout), &raw)
	raw["payload"].(map[string]any)["sentences"] = "none"
	res = bb(t, run{}, "publish", "--envelope-json", mustJSON(t, raw), "--dry-run")
	if res.code != 1 || !strings.Contains(res.stderr, "payload.sentences: expected array") {
		t.Errorf("an envelope with an invalid payload: want exit 1 naming payload.sentences\n%s", res)
	}
}

func TestPublish_validationPolicies(t *testing.T) {
	// Permissive: an unknown type is published (here: printed) with a warning.
	res := mustSucceed(t, run{}, "publish", "acme.widget.made", "--json", `{"size": 3}`, "--permissive-validation", "--dry-run")
	if env := decodeOneEnvelope(t, res); env.EventType != "acme.widget.made" {
		t.Errorf("event_type %q", env.EventType)
	}
	if !strings.Contains(res.stderr, `warning: "acme.widget.made" is not in the event catalogue`) {
		t.Errorf("no warning about the unknown type\n%s", res)
	}
	// --skip-validation lets an invalid payload of a known type through.
	res = mustSucceed(t, run{}, "publish", "agent.thread.prompt", "--json", `{"prompt": 42}`, "--skip-validation", "--dry-run")
	if env := decodeOneEnvelope(t, res); string(env.Payload) != `{"prompt":42}` {
		t.Errorf("payload %s", env.Payload)
	}
	// ...but not an unknown type, which is the strict policy's call.
	res = bb(t, run{}, "publish", "acme.widget.made", "--json", `{}`, "--skip-validation", "--dry-run")
	if res.code != 1 {
		t.Errorf("--skip-validation alone must not publish an unknown type\n%s", res)
	}
}

// Without RABBIT_URL there is no broker to publish to: the embedded
// transport would live and die inside bb.
func TestPublish_withoutRabbitURLExits2(t *testing.T) {
	for _, args := range [][]string{
		{"publish", "agent.thread.prompt", "--mock"},
		{"tail", "--count", "1"},
	} {
		res := bb(t, run{}, args...)
		if res.code != 2 || !strings.Contains(res.stderr, "RABBIT_URL is not set") {
			t.Errorf("bb %s: want exit 2 saying RABBIT_URL is not set\n%s", strings.Join(args, " "), res)
		}
		if res.stdout != "" {
			t.Errorf("bb %s: stdout should be empty\n%s", strings.Join(args, " "), res)
		}
	}
}

// A broker that is not there: exit 2 within the --timeout, naming the URL
// without its password.
func TestPublish_unreachableBrokerExits2WithinTimeout(t *testing.T) {
	const password = "Sup3rSecretPw"
	env := []string{"RABBIT_URL=amqp://bbuser:" + password + "@127.0.0.1:1/"}
	for _, args := range [][]string{
		{"publish", "agent.thread.prompt", "--mock", "--timeout", "2s"},
		{"tail", "--timeout", "2s"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			res := bb(t, run{env: env}, args...)
			if res.code != 2 {
				t.Fatalf("want exit 2\n%s", res)
			}
			if res.elapsed > 5*time.Second {
				t.Errorf("gave up after %s, want about 2s", res.elapsed)
			}
			if !strings.Contains(res.stderr, "amqp://bbuser:xxxxx@127.0.0.1:1/") {
				t.Errorf("the message does not name the redacted URL\n%s", res)
			}
			if strings.Contains(res.stderr+res.stdout, password) {
				t.Errorf("the password leaked\n%s", res)
			}
		})
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
