package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// keptSnapshot is the catalogue's snapshot in the repository, as an absolute
// path: bb runs in a temporary directory.
func keptSnapshot(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "domains", "catalog", "testdata", "schemas.snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSchemaCheck_catalogueIsCompatibleWithTheKeptSnapshot is the schema
// gate: make test fails here when a change to a domain's payloads would
// break a consumer of the schemas in the kept snapshot.
func TestSchemaCheck_catalogueIsCompatibleWithTheKeptSnapshot(t *testing.T) {
	path := keptSnapshot(t)
	res := bb(t, run{}, "schema", "check", "--against", path)
	if res.code != 0 {
		t.Fatalf("the catalogue breaks consumers of %s.\n"+
			"If the break is deliberate and every consumer is ready, regenerate the snapshot from the repository root:\n"+
			"  go run ./cmd/bb schema snapshot > domains/catalog/testdata/schemas.snapshot.json\n%s", path, res)
	}
	if !strings.HasPrefix(res.stdout, "compatible: no breaking changes against "+path) || strings.Count(res.stdout, "\n") != 1 {
		t.Errorf("want one line starting with compatible\n%s", res)
	}
	// Additive changes pass the gate; a stale snapshot would let a later
	// change that breaks them through unnoticed, so say so.
	kept, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if now := mustSucceed(t, run{}, "schema", "snapshot").stdout; now != string(kept) {
		t.Logf("the catalogue has changed compatibly since %s was written; consider regenerating it", path)
	}
}

func TestSchemaSnapshot_deterministicAndKeyedByRoutingKey(t *testing.T) {
	first := mustSucceed(t, run{}, "schema", "snapshot")
	second := mustSucceed(t, run{}, "schema", "snapshot")
	if first.stdout != second.stdout {
		t.Fatal("two snapshots of the same catalogue differ")
	}
	var snap map[string]map[string]any
	if err := json.Unmarshal([]byte(first.stdout), &snap); err != nil {
		t.Fatalf("the snapshot is not a JSON object of schemas: %v\n%s", err, first)
	}
	for _, key := range []string{"fireflies.transcript.ready", "agent.thread.prompt", "artifact.{action}"} {
		if snap[key]["$schema"] == nil {
			t.Errorf("snapshot[%q] is not a JSON Schema: %v", key, snap[key])
		}
	}
	// Keys in the order they are printed: sorted.
	var keys []string
	for line := range strings.SplitSeq(first.stdout, "\n") {
		if rest, ok := strings.CutPrefix(line, `  "`); ok {
			keys = append(keys, rest[:strings.Index(rest, `"`)])
		}
	}
	if len(keys) != len(snap) || !slices.IsSorted(keys) {
		t.Errorf("top-level keys not one per type, sorted and indented: %q", keys)
	}
	if first.stderr != "" {
		t.Errorf("want nothing on stderr\n%s", first)
	}
}

func TestSchemaCheck_breakingChangesExit1WithKeyAndPath(t *testing.T) {
	var snap map[string]map[string]any
	if err := json.Unmarshal([]byte(mustSucceed(t, run{}, "schema", "snapshot").stdout), &snap); err != nil {
		t.Fatal(err)
	}
	// Make the old snapshot accept what the catalogue now rejects.
	sentence := snap["fireflies.transcript.ready"]["$defs"].(map[string]any)["TranscriptSentence"].(map[string]any)
	sentence["properties"].(map[string]any)["speaker_id"] = map[string]any{"type": "string"}
	snap["acme.widget.made"] = map[string]any{"type": "object"}
	old, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "old.json", string(old))

	res := bb(t, run{}, "schema", "check", "--against", path)
	if res.code != 1 {
		t.Fatalf("want exit 1\n%s", res)
	}
	for _, want := range []string{
		"2 breaking schema changes against " + path,
		"\n  acme.widget.made: type removed: the routing key is no longer registered",
		"\n  fireflies.transcript.ready: payload.sentences[].speaker_id: type changed from string to integer",
		"bb schema snapshot > " + path,
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q\n%s", want, res)
		}
	}
	if res.stdout != "" {
		t.Errorf("want nothing on stdout\n%s", res)
	}
}

func TestSchemaCheck_additiveChangesPass(t *testing.T) {
	var snap map[string]map[string]any
	if err := json.Unmarshal([]byte(mustSucceed(t, run{}, "schema", "snapshot").stdout), &snap); err != nil {
		t.Fatal(err)
	}
	// The old snapshot lacks a type and a field the catalogue has now.
	delete(snap, "llm.error")
	delete(snap["agent.thread.prompt"]["properties"].(map[string]any), "working_dir")
	old, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	res := mustSucceed(t, run{}, "schema", "check", "--against", writeFile(t, "old.json", string(old)))
	if !strings.HasPrefix(res.stdout, "compatible:") {
		t.Errorf("want a compatible line\n%s", res)
	}
}

func TestSchemaCheck_badInputExits1(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"schema"}, "missing subcommand: snapshot or check"},
		{"no --against", []string{"schema", "check"}, "--against is required"},
		{"missing file", []string{"schema", "check", "--against", "/nonexistent/bb-test/old.json"}, "no such file"},
		{"not a snapshot", []string{"schema", "check", "--against", writeFile(t, "bad.json", `[1, 2]`)}, "a snapshot is a JSON object of schemas keyed by routing key"},
		{"dangling reference", []string{"schema", "check", "--against", writeFile(t, "ref.json", `{"llm.error": {"$ref": "#/$defs/Gone"}}`)}, `reference "#/$defs/Gone" does not resolve`},
		{"argument", []string{"schema", "snapshot", "extra"}, `unknown command "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := bb(t, run{}, tt.args...)
			if res.code != 1 || !strings.Contains(res.stderr, tt.want) || res.stdout != "" {
				t.Errorf("want exit 1, %q on stderr and nothing on stdout\n%s", tt.want, res)
			}
		})
	}
}

func TestSchema_helpShowsExamples(t *testing.T) {
	for _, args := range [][]string{{"schema", "--help"}, {"schema", "snapshot", "--help"}, {"schema", "check", "--help"}} {
		res := mustSucceed(t, run{}, args...)
		if !strings.Contains(res.stdout, "Examples:") || !strings.Contains(res.stdout, "domains/catalog/testdata/schemas.snapshot.json") {
			t.Errorf("bb %s: want examples naming the kept snapshot\n%s", strings.Join(args, " "), res)
		}
	}
}
