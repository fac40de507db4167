package main_test

import (
	"strings"
	"testing"
)

// Every way of calling bb wrongly exits 1, says what to fix on stderr, and
// prints (and publishes) nothing on stdout. RABBIT_URL points at a closed
// port: a run that got past validation would exit 2, not 1.
func TestUsage_badInputExits1WithAMessage(t *testing.T) {
	badJSONFile := writeFile(t, "bad.json", "{\n  \"provider\": \"anthropic\"\n  \"prompt\": \"hi\"\n}\n")
	missing := "/nonexistent/bb-test/payload.json"
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  []string // substrings of stderr
	}{
		{"no command", nil, "", []string{"missing command"}},
		{"unknown command", []string{"frobnicate"}, "", []string{`unknown command "frobnicate"`, "Run 'bb --help'"}},
		{"unknown flag", []string{"publish", "agent.thread.prompt", "--mock", "--bogus"}, "", []string{"unknown flag: --bogus", "Run 'bb publish --help'"}},
		{"publish without anything", []string{"publish"}, "", []string{"no payload given", "--mock"}},
		{"publish without a payload source", []string{"publish", "agent.thread.prompt"}, "", []string{"no payload given", "exactly one of --mock, --json, --payload-file, --envelope-json, --envelope-file"}},
		{"publish without an event type", []string{"publish", "--mock"}, "", []string{"missing ROUTING_KEY_OR_NAME"}},
		{"two payload sources", []string{"publish", "agent.thread.prompt", "--mock", "--json", "{}"}, "", []string{"more than one payload source (--mock, --json)"}},
		{"payload and envelope", []string{"publish", "agent.thread.prompt", "--payload-file", "x.json", "--envelope-json", "{}"}, "", []string{"more than one payload source (--payload-file, --envelope-json)"}},
		{"bad JSON text", []string{"publish", "agent.thread.prompt", "--json", `{"provider": "x",`}, "", []string{"the payload (--json) is not valid JSON", "unexpected end of input"}},
		{"bad JSON on stdin", []string{"publish", "agent.thread.prompt", "--json", "-"}, `{"provider": x}`, []string{"is not valid JSON", "line 1, column"}},
		{"bad JSON file", []string{"publish", "agent.thread.prompt", "--payload-file", badJSONFile}, "", []string{"the payload (--payload-file) is not valid JSON", "line 3, column 3"}},
		{"bad JSON @file", []string{"publish", "agent.thread.prompt", "--json", "@" + badJSONFile}, "", []string{"is not valid JSON", "line 3"}},
		{"JSON that is not an object", []string{"publish", "agent.thread.prompt", "--json", `["a"]`}, "", []string{"must be a JSON object", "an array"}},
		{"missing payload file", []string{"publish", "agent.thread.prompt", "--payload-file", missing}, "", []string{"cannot read --payload-file file", "no such file or directory", "check the path"}},
		{"missing @file", []string{"publish", "agent.thread.prompt", "--json", "@" + missing}, "", []string{"cannot read --json file", "no such file"}},
		{"missing envelope file", []string{"publish", "--envelope-file", missing}, "", []string{"cannot read --envelope-file file"}},
		{"invalid payload", []string{"publish", "agent.thread.prompt", "--json", `{"provider": "anthropic", "prompt": 42, "tags": "a"}`}, "",
			[]string{"the payload of agent.thread.prompt fails validation", "\n  payload.prompt: expected string, got integer", "\n  payload.tags: expected array, got string", "--skip-validation"}},
		{"invalid nested payload", []string{"publish", "fireflies.transcript.ready", "--json", `{"sentences": [{"ai_filters": {"sentiment": "meh"}}]}`}, "",
			[]string{"payload.sentences[0].ai_filters.sentiment", "payload.transcript_url: required"}},
		{"template field missing", []string{"publish", "artifact.{action}", "--json", `{"kind": "k", "uri": "u"}`}, "", []string{"cannot fill the routing key artifact.{action}", "payload.action"}},
		{"template field disagrees with key", []string{"publish", "artifact.updated", "--json", `{"action": "created", "kind": "k", "uri": "u"}`}, "", []string{"payload.action", "artifact.updated"}},
		{"unknown event, strict by default", []string{"publish", "agent.thread.promt", "--json", "{}"}, "", []string{`unknown event type "agent.thread.promt"`, "did you mean agent.thread.prompt?", "--permissive-validation"}},
		{"unknown event, strict explicitly", []string{"publish", "acme.widget.made", "--json", "{}", "--strict-validation"}, "", []string{`unknown event type "acme.widget.made"`}},
		{"unknown event with --mock", []string{"publish", "acme.widget.made", "--mock", "--permissive-validation"}, "", []string{"--mock needs a registered event type"}},
		{"strict and permissive", []string{"publish", "acme.widget.made", "--json", "{}", "--strict-validation", "--permissive-validation"}, "", []string{"contradict"}},
		{"wildcard key", []string{"publish", "acme.#", "--json", "{}", "--permissive-validation"}, "", []string{"binding pattern"}},
		{"malformed --event-id", []string{"publish", "agent.thread.prompt", "--mock", "--event-id", "not-a-uuid"}, "", []string{`--event-id "not-a-uuid" is not a UUID`}},
		{"nil --event-id", []string{"publish", "agent.thread.prompt", "--mock", "--event-id", "00000000-0000-0000-0000-000000000000"}, "", []string{"nil UUID"}},
		{"malformed --correlation-id", []string{"publish", "agent.thread.prompt", "--mock", "--correlation-id", "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11", "--correlation-id", "1234"}, "", []string{`--correlation-id "1234" is not a UUID`}},
		{"bad --source-type", []string{"publish", "agent.thread.prompt", "--mock", "--source-type", "cron"}, "", []string{`--source-type "cron"`, "manual, agent, scheduled, file_watch, hook, heartbeat, webhook, service"}},
		{"envelope that is not one", []string{"publish", "--envelope-json", `{"event_type": "agent.thread.prompt"}`}, "", []string{"is not a Bloodbank v1 envelope"}},
		{"envelope with --event-id", []string{"publish", "--envelope-json", "{}", "--event-id", "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11"}, "", []string{"--event-id cannot change an envelope given whole"}},
		{"bad --timeout", []string{"publish", "agent.thread.prompt", "--mock", "--timeout", "0s"}, "", []string{"--timeout must be positive"}},
		{"bad --count", []string{"tail", "--count", "-1"}, "", []string{"--count must be 0"}},
		{"trace malformed id", []string{"trace", "not-a-uuid"}, "", []string{`EVENT_ID "not-a-uuid" is not a UUID`}},
		{"trace without id", []string{"trace"}, "", []string{"accepts 1 arg(s), received 0", "Run 'bb trace --help'"}},
		{"trace bad depth", []string{"trace", "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11", "--depth", "0"}, "", []string{"--depth must be 1 or more"}},
		{"id without '='", []string{"id", "fireflies.transcript.upload", "meeting_id"}, "", []string{`field "meeting_id" has no '='`, "name=value"}},
		{"id with a field twice", []string{"id", "fireflies.transcript.upload", "a=1", "a=2"}, "", []string{`field "a" is given twice`}},
		{"id without event type", []string{"id"}, "", []string{"requires at least 1 arg(s)"}},
		{"show unknown name", []string{"show", "fireflies.transcript.redy"}, "", []string{`unknown event type "fireflies.transcript.redy"`, "did you mean fireflies.transcript.ready?"}},
		{"list-events bad type", []string{"list-events", "--type", "query"}, "", []string{`--type "query": want event or command`}},
		{"list-events unknown domain", []string{"list-events", "--domain", "billing"}, "", []string{`unknown domain "billing"`, "agent/thread"}},
		{"dlq without subcommand", []string{"dlq"}, "", []string{"missing subcommand: list, show, replay or purge"}},
		{"dlq bad kind", []string{"dlq", "list", "--kind", "broken"}, "", []string{`--kind "broken"`, "malformed, invalid, unknown_type, handler, panic"}},
		{"dlq bad pattern", []string{"dlq", "list", "--routing-key", strings.Repeat("agent.", 50)}, "", []string{"--routing-key", "longer than 255 bytes"}},
		{"dlq bad since", []string{"dlq", "list", "--since", "yesterday"}, "", []string{`--since "yesterday"`, "RFC 3339", "7d"}},
		{"dlq empty range", []string{"dlq", "list", "--since", "1h", "--until", "2h"}, "", []string{"is not before --until"}},
		{"dlq bad limit", []string{"dlq", "replay", "--all", "--limit", "-1"}, "", []string{"--limit must be 0"}},
		{"dlq show without id", []string{"dlq", "show"}, "", []string{"accepts 1 arg(s), received 0"}},
		{"dlq replay nothing", []string{"dlq", "replay"}, "", []string{"nothing to replay", "--all"}},
		{"dlq replay ids and all", []string{"dlq", "replay", "--all", "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11"}, "", []string{"not both"}},
		{"dlq purge without a terminal", []string{"dlq", "purge"}, "yes\n", []string{"refusing to purge", "--yes"}},
		{"serve with an argument", []string{"serve", "now"}, "", []string{`unknown command "now"`}},
	}
	env := []string{"RABBIT_URL=amqp://guest:guest@127.0.0.1:1/", "REDIS_PORT=1"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := bb(t, run{env: env, stdin: tt.stdin}, tt.args...)
			if res.code != 1 {
				t.Fatalf("bb %s: want exit 1\n%s", strings.Join(tt.args, " "), res)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q\n%s", w, res)
				}
			}
			if res.stdout != "" {
				t.Errorf("stdout should be empty on bad usage\n%s", res)
			}
		})
	}
}

// A bad setting in .env is invalid input too, named by its variable.
func TestUsage_badSettingInDotEnv(t *testing.T) {
	dir := t.TempDir()
	if err := writeTo(dir+"/.env", "CORRELATION_TTL_DAYS=0\n"); err != nil {
		t.Fatal(err)
	}
	res := bbIn(t, dir, run{}, "trace", "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11")
	if res.code != 1 || !strings.Contains(res.stderr, "CORRELATION_TTL_DAYS") {
		t.Fatalf("want exit 1 naming CORRELATION_TTL_DAYS\n%s", res)
	}
}

// Every command documents itself with an example; the root command
// documents the exit codes.
func TestHelp_everyCommandHasAnExample(t *testing.T) {
	for _, cmd := range []string{"publish", "tail", "id", "trace", "list-events", "list-commands", "show", "serve",
		"dlq", "dlq list", "dlq show", "dlq replay", "dlq purge"} {
		res := mustSucceed(t, run{}, append(strings.Fields(cmd), "--help")...)
		if !strings.Contains(res.stdout, "Examples:\n  bb "+cmd) {
			t.Errorf("bb %s --help has no example\n%s", cmd, res)
		}
	}
	res := mustSucceed(t, run{}, "--help")
	for _, w := range []string{"Exit codes:", "0  success", "1  bad usage or invalid input", "2  infrastructure", "--timeout duration"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("bb --help lacks %q\n%s", w, res)
		}
	}
	res = mustSucceed(t, run{}, "publish", "--help")
	if !strings.Contains(res.stdout, "still exits 0") {
		t.Errorf("bb publish --help does not say an unroutable publish exits 0\n%s", res)
	}
}
