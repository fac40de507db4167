package envelope

// Benchmarks of the codec's pieces and the checks that keep its hand-written
// fast paths identical to encoding/json, the reference they replaced.

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// referenceEncode is how the envelope was written before the hand-written
// encoder: encoding/json on the wire structs, HTML escaping off.
func referenceEncode(e Envelope) ([]byte, error) {
	id, ts, ver := e.EventID.String(), FormatTimestamp(e.Timestamp), e.Version
	if ver == "" {
		ver = Version
	}
	w := wireEnvelope{
		EventID:        &id,
		EventType:      &e.EventType,
		Timestamp:      &ts,
		Version:        &ver,
		Source:         &wireSource{Host: &e.Source.Host, Type: (*string)(&e.Source.Type), App: opt(e.Source.App), Meta: e.Source.Meta},
		CorrelationIDs: make([]string, len(e.CorrelationIDs)),
		AgentContext:   e.AgentContext.wire(),
		Payload:        e.Payload,
	}
	for i, c := range e.CorrelationIDs {
		w.CorrelationIDs[i] = c.String()
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

func TestEncode_matchesEncodingJSON(t *testing.T) {
	for i, e := range codecCases() {
		want, werr := referenceEncode(e)
		got, gerr := e.MarshalJSON()
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("case %d: error %v, reference error %v", i, gerr, werr)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestEncode_errorsMatchEncodingJSON(t *testing.T) {
	bad := []Envelope{
		{EventID: uuid.New(), EventType: "x", Source: Source{Host: "h", Type: "manual"}, Payload: json.RawMessage(`{"a":`)},
		{EventID: uuid.New(), EventType: "x", Source: Source{Host: "h", Type: "manual", Meta: map[string]any{"f": math.NaN()}}, Payload: json.RawMessage(`{}`)},
		{EventID: uuid.New(), EventType: "x", Source: Source{Host: "h", Type: "manual"}, AgentContext: &AgentContext{Type: "t", Meta: map[string]any{"c": make(chan int)}}, Payload: json.RawMessage(`{}`)},
		{EventID: uuid.New(), EventType: "x", Source: Source{Host: "h", Type: "manual"}, Payload: json.RawMessage(`{} x`)},
	}
	for i, e := range bad {
		_, werr := referenceEncode(e)
		var buf bytes.Buffer
		gerr := e.encode(&buf)
		if werr == nil || gerr == nil {
			t.Fatalf("case %d: error %v, reference error %v; want both", i, gerr, werr)
		}
		want := "cannot encode envelope " + e.EventID.String() + ": " + werr.Error()
		if gerr.Error() != want {
			t.Errorf("case %d: error\n got %s\nwant %s", i, gerr, want)
		}
	}
}

// FuzzEncode_matchesEncodingJSON checks the hand-written encoder against
// encoding/json on arbitrary strings and payloads:
// go test -run '^$' -fuzz FuzzEncode ./bus
func FuzzEncode_matchesEncodingJSON(f *testing.F) {
	for _, s := range tricky {
		f.Add(s, `{"a":"`+s+`"}`)
	}
	f.Add("x", "{ \"a\" :\n1 }")
	f.Fuzz(func(t *testing.T, s, payload string) {
		e := Envelope{EventID: uuid.New(), EventType: s, Timestamp: time.Now(), Source: Source{Host: s, Type: TriggerType(s), App: s, Meta: map[string]any{s: s}},
			AgentContext: &AgentContext{Type: AgentType(s), Name: s, MCPServers: []string{s}}, Payload: json.RawMessage(payload)}
		if len(payload) == 0 {
			return
		}
		want, werr := referenceEncode(e)
		var buf bytes.Buffer
		gerr := e.encode(&buf)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("error %v, reference error %v", gerr, werr)
		}
		if werr == nil && !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("\n got %s\nwant %s", buf.Bytes(), want)
		}
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

// BenchmarkEnvelope_EncodeReference is the encoding/json encoder the
// hand-written one replaced, for comparison with BenchmarkEnvelope_Encode.
func BenchmarkEnvelope_EncodeReference(b *testing.B) {
	e := benchEnvelope(b)
	body, _ := e.MarshalJSON()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := referenceEncode(e); err != nil {
			b.Fatal(err)
		}
	}
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

// compactCases are payloads for compactJSON: it must never say "compact"
// where json.Compact would change the bytes or fail.
var compactCases = []string{
	`{}`, `[]`, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":true,"d":false}`, `"s"`, `0`, `-0`, `1.5e-3`, `1E+9`,
	`{"u":"\u00e9\ud83d\ude80","e":"\"\\\/\b\f\n\r\t"}`, "{\"raw\":\"\xff\xfe\"}", `{"a":01}`, `{"a":1.}`, `{"a":.5}`,
	`{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":1,}`, `[1,]`,
	`{"a" :1}`, ` {}`, `{} `, "{\n}", `{"a":1}{}`, `{"a"}`, `{,}`, `[`, `{"a":`, `"`, `nul`, `{"a":1}x`,
	strings.Repeat("[", 70) + strings.Repeat("]", 70), `{"a":[[[[1]]]]}`, `1.0e+`, `-01`, `{"\u2028":"<&>"}`,
}

func TestCompactJSON_agreesWithCompact(t *testing.T) {
	for _, c := range compactCases {
		checkCompact(t, []byte(c))
	}
	// The fast path must cover what producers write.
	for _, c := range []string{`{}`, `{"a":[1,2,{"b":null}],"c":true,"d":false}`, `{"u":"\u00e9\ud83d\ude80","e":"\"\\\/\b\f\n\r\t"}`, `-0.5E+3`} {
		if !compactJSON([]byte(c)) {
			t.Errorf("compactJSON(%s) = false, want true", c)
		}
	}
}

func checkCompact(t *testing.T, b []byte) {
	t.Helper()
	if !compactJSON(b) {
		return
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compactJSON(%q) = true, but json.Compact fails: %v", b, err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		t.Fatalf("compactJSON(%q) = true, but json.Compact writes %q", b, buf.Bytes())
	}
}

// go test -run '^$' -fuzz FuzzCompactJSON ./bus
func FuzzCompactJSON(f *testing.F) {
	for _, c := range compactCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkCompact(t, b) })
}

// decodeCases are bodies for the fast decoder: where it succeeds it must
// give what encoding/json gives, and it must leave every error to it.
func decodeCases(t testing.TB) []string {
	good, err := benchEnvelope(nil).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	g := string(good)
	var indented bytes.Buffer
	if err := json.Indent(&indented, good, "", "  "); err != nil {
		t.Fatal(err)
	}
	id, parent := `"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11"`, `"6a0e4c39-8d1b-4b5e-9a57-0c1f2e3d4b5a"`
	env := func(fields string) string {
		return `{"event_id":` + id + `,"event_type":"a.b","timestamp":"2026-01-29T10:00:00.123456Z",` + fields + `"payload":{"x":1}}`
	}
	src := `"source":{"host":"h","type":"manual","app":null,"meta":null},`
	return []string{
		g, " \n" + g + "\t ", strings.ReplaceAll(g, ",", ", "), indented.String(),
		env(src), env(src + `"version":"2.0.0",`), env(src + `"version":null,`), env(src + `"version":"",`),
		env(src + `"correlation_ids":null,`), env(src + `"correlation_ids":[],`), env(src + `"correlation_ids":[` + parent + `,` + parent + `],`),
		env(src + `"correlation_ids":["x"],`), env(src + `"correlation_ids":[null],`), env(src + `"correlation_ids":"x",`),
		env(src + `"agent_context":null,`), env(src + `"agent_context":{"type":"letta","mcp_servers":["a"],"code_state":{"branch":"b"},"meta":{"k":[1,"<"]}},`),
		env(src + `"agent_context":{"name":"n"},`), env(src + `"agent_context":{"type":""},`), env(src + `"agent_context":[],`),
		env(src + `"extra":{"deep":[1,2,{"x":null}],"n":-1.5e3},"more":"\u00e9",`), env(src + `"EXTRA":1,`),
		env(src + `"Version":"9",`), env(src + `"event_ID":"x",`), env(src + `"ſource":{},`), env(src + `"event\u005fid":"x",`),
		env(src + `"event_id":` + id + `,`), env(src + `"source":{"host":"h2","type":"manual"},`),
		env(`"source":{"host":"h","type":"manual","app":"a","meta":{"pid":42,"tty":"x"},"extra":true},`),
		env(`"source":{"host":"h","type":"manual","HOST":"x"},`), env(`"source":{"host":"h","type":"manual","host":"y"},`),
		env(`"source":{"host":"","type":"manual"},`), env(`"source":{"host":"h"},`), env(`"source":null,`), env(`"source":{"host":"h","type":"manual","meta":"x"},`),
		env(`"source":{"host":"h\n","type":"manual"},`), env(`"source":{"host":"h\"q","type":"manual"},`), env(`"source":{"host":1,"type":"manual"},`),
		env(`"source":{"host":"ü 🚀","type":"new_type","app":"<&>"},`),
		`{"event_id":` + id + `,"event_type":"a.b","timestamp":"2026-01-29T10:00:00","version":"1.0.0",` + src + `"payload":{}}`,
		`{"event_id":` + id + `,"event_type":"a.b","timestamp":"yesterday",` + src + `"payload":{}}`,
		`{"event_id":"nope","event_type":"a.b","timestamp":"2026-01-29T10:00:00Z",` + src + `"payload":{}}`,
		`{"event_id":` + id + `,"event_type":"","timestamp":"2026-01-29T10:00:00Z",` + src + `"payload":{}}`,
		`{"event_id":` + id + `,"event_type":"a.b","timestamp":"2026-01-29T10:00:00Z",` + src + `"payload":[]}`,
		`{"event_id":` + id + `,"event_type":"a.b","timestamp":"2026-01-29T10:00:00Z",` + src + `"payload":null}`,
		`{"event_id":` + id + `,"event_type":"a.b","timestamp":"2026-01-29T10:00:00Z",` + src + `"payload":{"a":}}`,
		`{"event_id":` + id + `,"event_type":"a.b","timestamp":"2026-01-29T10:00:00Z",` + src + `}`,
		env(src) + " x", env(src) + "}", env(src)[:len(env(src))-1], "{\"event_id\":\xff}", "[]", "", "null",
		`{"event_id":` + id + `,"event_type":"a.b","timestamp":"2026-01-29T10:00:00.123Z","source":{"host":"h","type":"t"},"payload":{"p":"a\tb"}}`,
	}
}

func checkDecode(t *testing.T, body []byte) {
	t.Helper()
	want, werr := decodeReflect(body)
	got, ok := decodeFast(body)
	if !ok {
		return
	}
	if werr != nil {
		t.Fatalf("decodeFast(%s) succeeded; encoding/json fails: %v", body, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeFast(%s):\n got %#v\nwant %#v", body, got, want)
	}
}

func TestDecodeFast_agreesWithEncodingJSON(t *testing.T) {
	fast := 0
	for _, c := range decodeCases(t) {
		checkDecode(t, []byte(c))
		if _, ok := decodeFast([]byte(c)); ok {
			fast++
		}
	}
	// The fast path must cover the bodies producers write.
	body, _ := benchEnvelope(nil).MarshalJSON()
	if _, ok := decodeFast(body); !ok {
		t.Errorf("decodeFast does not take a body Go writes: %s", body)
	}
	var spaced bytes.Buffer
	_ = json.Indent(&spaced, body, "", " ")
	if _, ok := decodeFast(spaced.Bytes()); !ok {
		t.Error("decodeFast does not take a spaced body as Python's json.dumps writes it")
	}
	t.Logf("%d of %d cases took the fast path", fast, len(decodeCases(t)))
}

// go test -run '^$' -fuzz FuzzDecodeFast ./bus
func FuzzDecodeFast(f *testing.F) {
	for _, c := range decodeCases(f) {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkDecode(t, body) })
}

// BenchmarkDecodeEnvelope_reflect is the encoding/json decoder the fast
// path avoids, for comparison with BenchmarkEnvelope_Decode.
func BenchmarkDecodeEnvelope_reflect(b *testing.B) {
	body, err := benchEnvelope(b).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeReflect(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompactJSON is the check the encoder makes on every payload
// (json.Compact, which it replaces on compact payloads, for comparison).
func BenchmarkCompactJSON(b *testing.B) {
	p := benchEnvelope(b).Payload
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		b.ReportAllocs()
		for b.Loop() {
			if !compactJSON(p) {
				b.Fatal("not compact")
			}
		}
	})
	b.Run("json.Compact", func(b *testing.B) {
		var buf bytes.Buffer
		b.SetBytes(int64(len(p)))
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			if err := json.Compact(&buf, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
