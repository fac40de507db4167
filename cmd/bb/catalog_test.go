package main_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// The routing keys of wire-contract section 6, copied from the contract
// rather than from the registry, so that a key missing from the catalogue
// fails here.
var contractKeys = []string{
	"fireflies.transcript.upload", "fireflies.transcript.ready", "fireflies.transcript.processed", "fireflies.transcript.failed",
	"agent.thread.prompt", "agent.thread.response", "agent.thread.error",
	"agent.feedback.requested", "agent.feedback.response",
	"github.pr.created",
	"llm.prompt", "llm.response", "llm.error",
	"artifact.created", "artifact.updated", "artifact.deleted", "artifact.ingestion.failed",
	"theboard.meeting.created", "theboard.meeting.started", "theboard.meeting.round_completed",
	"theboard.meeting.comment_extracted", "theboard.meeting.converged", "theboard.meeting.completed",
	"theboard.meeting.failed", "theboard.meeting.participant.added", "theboard.meeting.participant.turn.completed",
}

func TestListEvents_showsEveryContractKeyGroupedByDomain(t *testing.T) {
	res := mustSucceed(t, run{}, "list-events")
	words := map[string]bool{}
	for _, f := range strings.Fields(res.stdout) {
		words[f] = true
	}
	for _, k := range contractKeys {
		if !words[k] {
			t.Errorf("list-events lacks %s", k)
		}
	}
	if !words["artifact.{action}"] {
		t.Errorf("list-events does not show the template artifact.{action}\n%s", res)
	}
	// Domains head their groups, in order, each once.
	var headers []string
	for _, l := range lines(res.stdout) {
		if !strings.HasPrefix(l, " ") {
			headers = append(headers, l)
		}
	}
	want := []string{"agent/feedback", "agent/thread", "artifact", "fireflies", "github", "llm", "theboard"}
	if strings.Join(headers, ",") != strings.Join(want, ",") {
		t.Errorf("domain headers = %v, want %v", headers, want)
	}
	// Each event line sits under its domain's header.
	idx := func(s string) int { return strings.Index(res.stdout, s) }
	if !(idx("\nfireflies\n") < idx("fireflies.transcript.ready") && idx("fireflies.transcript.ready") < idx("\ngithub\n")) {
		t.Errorf("fireflies.transcript.ready is not under fireflies\n%s", res)
	}
}

func TestListEvents_filters(t *testing.T) {
	res := mustSucceed(t, run{}, "list-events", "--type", "command")
	cmds := mustSucceed(t, run{}, "list-commands")
	if res.stdout != cmds.stdout {
		t.Errorf("list-commands differs from list-events --type command\n%s\n%s", res, cmds)
	}
	for _, want := range []string{"agent.thread.prompt", "command → agent.thread.response"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("commands lack %q\n%s", want, res)
		}
	}
	if strings.Contains(res.stdout, "llm.prompt") {
		t.Errorf("llm.prompt listed as a command; it is a fact, as in Python\n%s", res)
	}
	for _, l := range lines(res.stdout) {
		if strings.HasPrefix(l, "  ") && !strings.Contains(l, " command") {
			t.Errorf("a fact listed as a command: %s", l)
		}
	}

	res = mustSucceed(t, run{}, "list-events", "--domain", "agent", "--type", "event")
	if !strings.Contains(res.stdout, "agent.feedback.requested") || !strings.Contains(res.stdout, "agent.thread.response") ||
		strings.Contains(res.stdout, "agent.thread.prompt") || strings.Contains(res.stdout, "llm.") {
		t.Errorf("--domain agent --type event\n%s", res)
	}
}

func TestShow_commandWithSchemaAndExample(t *testing.T) {
	res := mustSucceed(t, run{}, "show", "agent.thread.prompt")
	for _, want := range []string{"routing key:   agent.thread.prompt", "domain:        agent/thread", "kind:          command", "result event:  agent.thread.response", "AgentThreadPrompt"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("show lacks %q\n%s", want, res)
		}
	}
	schemaText := between(t, res.stdout, "JSON Schema:\n", "\n\nExample payload")
	var schema struct {
		Schema     string                     `json:"$schema"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if err := json.Unmarshal([]byte(schemaText), &schema); err != nil {
		t.Fatalf("the schema is not JSON: %v\n%s", err, schemaText)
	}
	if schema.Properties["prompt"] == nil || !strings.Contains(strings.Join(schema.Required, ","), "prompt") {
		t.Errorf("the schema does not require prompt: %s", schemaText)
	}
	example := res.stdout[strings.Index(res.stdout, "--mock):\n")+len("--mock):\n"):]
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Validate("agent.thread.prompt", []byte(example)); err != nil {
		t.Errorf("the example does not validate: %v\n%s", err, example)
	}

	// Any of its names shows the same type; a fact says so.
	for _, name := range []string{"thread.Prompt", "AgentThreadPrompt"} {
		if alt := mustSucceed(t, run{}, "show", name); alt.stdout != res.stdout {
			t.Errorf("show %s differs from show agent.thread.prompt", name)
		}
	}
	fact := mustSucceed(t, run{}, "show", "artifact.updated")
	for _, want := range []string{"kind:          fact", "artifact.{action}", "expands to:    artifact.created, artifact.updated, artifact.deleted"} {
		if !strings.Contains(fact.stdout, want) {
			t.Errorf("show artifact.updated lacks %q\n%s", want, fact)
		}
	}
}

func TestID_matchesThePythonIDs(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"fireflies.transcript.upload", "meeting_id=abc123"}, "70117275-3199-5e4c-a175-71646fb33ad7"},
		{[]string{"fireflies.transcript.upload", "user_id=user_456", "meeting_id=abc123"}, "dcbf406d-aaae-5a9a-8b36-38bb4f5ac1e7"},
		{[]string{"fireflies.transcript.upload", "meeting_id=abc123", "user_id=user_456"}, "dcbf406d-aaae-5a9a-8b36-38bb4f5ac1e7"},
	}
	for _, tt := range tests {
		res := mustSucceed(t, run{}, append([]string{"id"}, tt.args...)...)
		if res.stdout != tt.want+"\n" {
			t.Errorf("bb id %s = %q, want %s", strings.Join(tt.args, " "), res.stdout, tt.want)
		}
		if res.stderr != "" {
			t.Errorf("bb id %s wrote to stderr\n%s", strings.Join(tt.args, " "), res)
		}
	}
	// A value given as text is the id of the Python int with those digits,
	// and a value may itself hold '='.
	res := mustSucceed(t, run{}, "id", "github.pr.created", "repo_owner=33god", "repo_name=bloodbank", "pr_number=42", "note=a=b")
	want, err := envelope.DeterministicID("github.pr.created", map[string]any{"repo_owner": "33god", "repo_name": "bloodbank", "pr_number": 42, "note": "a=b"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(res.stdout) != want.String() {
		t.Errorf("bb id github.pr.created ... = %s, want %s", res.stdout, want)
	}
	// An event type not in the catalogue still gets its id, with a warning.
	res = mustSucceed(t, run{}, "id", "fireflies.transcript.uplaod", "meeting_id=abc123")
	if !strings.Contains(res.stderr, "did you mean fireflies.transcript.upload?") {
		t.Errorf("no warning about the misspelt type\n%s", res)
	}
}

func between(t *testing.T, s, from, to string) string {
	t.Helper()
	i := strings.Index(s, from)
	j := strings.Index(s, to)
	if i < 0 || j < i {
		t.Fatalf("cannot find %q ... %q in\n%s", from, to, s)
	}
	return s[i+len(from) : j]
}
