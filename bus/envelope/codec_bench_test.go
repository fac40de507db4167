package envelope

// Benchmarks of the codec's pieces, and the check that the envelope is
// written byte for byte as encoding/json writes the wire structs, which is
// what Go producers have always put on the wire.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// referenceEncode writes the envelope with encoding/json, HTML escaping
// off, from structs of the same shape as the wire structs.
func referenceEncode(e Envelope) ([]byte, error) {
	type source struct {
		Host string         `json:"host"`
		Type string         `json:"type"`
		App  *string        `json:"app"`
		Meta map[string]any `json:"meta"`
	}
	type codeState struct {
		RepoURL        *string `json:"repo_url"`
		Branch         *string `json:"branch"`
		WorkingDiff    *string `json:"working_diff"`
		BranchDiff     *string `json:"branch_diff"`
		LastCommitHash *string `json:"last_commit_hash"`
	}
	type agentContext struct {
		Type           *string        `json:"type"`
		Name           *string        `json:"name"`
		SystemPrompt   *string        `json:"system_prompt"`
		InstanceID     *string        `json:"instance_id"`
		MCPServers     []string       `json:"mcp_servers"`
		FileReferences []string       `json:"file_references"`
		URLReferences  []string       `json:"url_references"`
		CodeState      *codeState     `json:"code_state"`
		CheckpointID   *string        `json:"checkpoint_id"`
		Meta           map[string]any `json:"meta"`
	}
	type envelope struct {
		EventID        string          `json:"event_id"`
		EventType      string          `json:"event_type"`
		Timestamp      string          `json:"timestamp"`
		Version        string          `json:"version"`
		Source         source          `json:"source"`
		CorrelationIDs []string        `json:"correlation_ids"`
		AgentContext   *agentContext   `json:"agent_context"`
		Payload        json.RawMessage `json:"payload"`
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	w := envelope{
		EventID: e.EventID.String(), EventType: e.EventType, Timestamp: FormatTimestamp(e.Timestamp), Version: e.Version,
		Source:         source{Host: e.Source.Host, Type: string(e.Source.Type), App: opt(e.Source.App), Meta: e.Source.Meta},
		CorrelationIDs: []string{},
		Payload:        e.Payload,
	}
	if w.Version == "" {
		w.Version = Version
	}
	for _, c := range e.CorrelationIDs {
		w.CorrelationIDs = append(w.CorrelationIDs, c.String())
	}
	if ac := e.AgentContext; ac != nil {
		w.AgentContext = &agentContext{Type: opt(string(ac.Type)), Name: opt(ac.Name), SystemPrompt: opt(ac.SystemPrompt),
			InstanceID: opt(ac.InstanceID), MCPServers: ac.MCPServers, FileReferences: ac.FileReferences,
			URLReferences: ac.URLReferences, CheckpointID: opt(ac.CheckpointID), Meta: ac.Meta}
		if cs := ac.CodeState; cs != nil {
			w.AgentContext.CodeState = &codeState{RepoURL: opt(cs.RepoURL), Branch: opt(cs.Branch),
				WorkingDiff: opt(cs.WorkingDiff), BranchDiff: opt(cs.BranchDiff), LastCommitHash: opt(cs.LastCommitHash)}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// tricky are strings that exercise every branch of JSON string escaping.
var tricky = []string{
	"", "plain", `quote " and backslash \`, "<html> & 'amp'", "tab\tnl\ncr\rbs\bff\f",
	"ctrl \x00\x01\x1f\x7f", "line\u2028para\u2029", "bad utf8 \xff\xfe end", "truncated \xe2\x80",
	"emoji 🚀 and ü", "\u2027\u202a", strings.Repeat("long text ", 100),
}

func codecCases() []Envelope {
	ts := time.Date(2026, 1, 29, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	base := func() Envelope {
		return Envelope{
			EventID: uuid.MustParse("0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11"), EventType: "agent.thread.prompt",
			Timestamp: ts, Version: "1.0.0", Source: Source{Host: "h", Type: TriggerManual},
			CorrelationIDs: []uuid.UUID{}, Payload: json.RawMessage(`{"a":1}`),
		}
	}
	var out []Envelope
	for _, s := range tricky {
		e := base()
		e.EventType, e.Source.Host, e.Source.App, e.Source.Type = s, s, s, TriggerType(s)
		e.Version = s
		e.Source.Meta = map[string]any{s: s, "n": 1.5, "nested": map[string]any{"x": []any{s, nil, true}}}
		e.AgentContext = &AgentContext{Type: AgentType(s), Name: s, SystemPrompt: s, InstanceID: s, CheckpointID: s,
			MCPServers: []string{s, s}, FileReferences: []string{}, URLReferences: nil,
			CodeState: &CodeState{RepoURL: s, Branch: s, WorkingDiff: s, BranchDiff: "", LastCommitHash: s},
			Meta:      map[string]any{"k": s}}
		p, _ := json.Marshal(map[string]string{"s": s})
		e.Payload = p
		out = append(out, e)
	}
	e := base()
	e.Version = ""
	e.CorrelationIDs = []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	e.Payload = json.RawMessage(" {\n \"a\" : [ 1 , 2 ] ,\t\"b\" : \"x y\" } ")
	out = append(out, e)
	e = base()
	e.Source.Meta = map[string]any{}
	e.AgentContext = &AgentContext{Type: AgentCustom}
	e.Timestamp = time.Date(12345, 12, 31, 23, 59, 59, 999999999, time.UTC)
	out = append(out, e)
	e = base()
	e.Timestamp = time.Time{}
	e.CorrelationIDs = nil
	out = append(out, e)
	return out
}

// TestEncode_matchesEncodingJSON holds the wire to what encoding/json
// writes: escapes, U+2028/U+2029 escaped in Go strings, sorted map keys,
// nulls, payloads compacted and otherwise kept as they are. Two
// differences, each the same JSON value: invalid UTF-8 in a Go string,
// which encoding/json writes as the escape \ufffd and encoding/json/v2 (and
// encoding/json itself under GOEXPERIMENT=jsonv2) as the character U+FFFD;
// and U+2028/U+2029 in Go strings of an envelope whose payload holds them
// as characters, which MarshalJSON then leaves unescaped (see
// verbatimOptions).
func TestEncode_matchesEncodingJSON(t *testing.T) {
	for i, e := range codecCases() {
		checkEncode(t, fmt.Sprint("case ", i), e)
	}
}

func checkEncode(t *testing.T, name string, e Envelope) {
	t.Helper()
	want, werr := referenceEncode(e)
	got, gerr := e.MarshalJSON()
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: error %v, encoding/json error %v", name, gerr, werr)
	}
	if werr != nil {
		return
	}
	// The payload is last; before it, strings cannot hold `,"payload":`
	// unescaped.
	i, j := bytes.Index(want, []byte(`,"payload":`)), bytes.Index(got, []byte(`,"payload":`))
	if i < 0 || j < 0 || !bytes.Equal(got[j:], want[i:]) {
		t.Fatalf("%s: payload differs:\n got %s\nwant %s", name, got, want)
	}
	wantFields := bytes.ReplaceAll(want[:i], []byte(`\ufffd`), []byte("\ufffd"))
	if hasLineSeparator(e.Payload) {
		// MarshalJSON then writes U+2028 and U+2029 unescaped in Go
		// strings too: the same JSON values.
		var g, w any
		if json.Unmarshal(append(got[:j:j], '}'), &g) != nil || json.Unmarshal(append(wantFields, '}'), &w) != nil || !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
		return
	}
	if !bytes.Equal(got[:j], wantFields) {
		t.Errorf("%s:\n got %s\nwant %s", name, got, want)
	}
}

// FuzzEncode_matchesEncodingJSON is TestEncode_matchesEncodingJSON on
// arbitrary strings and payloads:
// go test -run '^$' -fuzz FuzzEncode ./bus/envelope
func FuzzEncode_matchesEncodingJSON(f *testing.F) {
	for _, s := range tricky {
		f.Add(s, `{"a":"`+s+`"}`)
	}
	f.Add("x", "{ \"a\" :\n1 }")
	f.Fuzz(func(t *testing.T, s, payload string) {
		if len(payload) == 0 {
			return
		}
		e := Envelope{EventID: uuid.New(), EventType: s, Timestamp: time.Now(), Source: Source{Host: s, Type: TriggerType(s), App: s, Meta: map[string]any{s: s}},
			AgentContext: &AgentContext{Type: AgentType(s), Name: s, MCPServers: []string{s}}, Payload: json.RawMessage(payload)}
		checkEncode(t, "fuzz", e)
	})
}

func benchEnvelope(b testing.TB) Envelope {
	p, _ := json.Marshal(map[string]any{"provider": "anthropic", "model": "claude-sonnet-4",
		"prompt": strings.Repeat("Explain the module layout, the codec and the retry policy. ", 14), "tags": []string{"bench"}})
	e, err := New("agent.thread.prompt", json.RawMessage(p), WithCorrelationIDs(uuid.New()),
		WithSource(Source{Host: "h", Type: TriggerManual, App: "bench"}))
	if err != nil {
		panic(err)
	}
	return e
}

// BenchmarkNewMessage is what a publisher pays to turn an envelope into a
// Watermill message before the codec writes it.
func BenchmarkNewMessage(b *testing.B) {
	e := benchEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewMessage(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnvelopeFromMessage is what the codec pays to read an envelope
// back from a message's metadata before writing it.
func BenchmarkEnvelopeFromMessage(b *testing.B) {
	msg, err := NewMessage(benchEnvelope(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeDelivery is the consuming half of the codec on a body
// with one parent and no agent context, the common case on the bus.
func BenchmarkDecodeDelivery(b *testing.B) {
	body, err := benchEnvelope(b).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		DecodeDelivery(body, "", "agent.thread.prompt", nil)
	}
}

// BenchmarkCodecMarshal is the publishing half of the codec on the common
// body of BenchmarkDecodeDelivery: what a publisher pays per message on
// top of the AMQP client, from an envelope to the body written.
func BenchmarkCodecMarshal(b *testing.B) {
	e := benchEnvelope(b)
	b.ReportAllocs()
	for b.Loop() {
		msg, err := NewMessage(e)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := (Codec{}).Marshal(msg); err != nil {
			b.Fatal(err)
		}
	}
}
