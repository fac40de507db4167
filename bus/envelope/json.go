package envelope

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/33god/bloodbank-go/internal/jsonnumber"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
)

// Every JSON document the package reads or writes goes through
// github.com/go-json-experiment/json (encoding/json/v2) with these options.
var (
	// encodeOptions write the bytes encoding/json writes with HTML
	// escaping off, so that every Go writer on the bus agrees: compact,
	// <, > and & as they are (Python's json.dumps does not escape them
	// either), U+2028 and U+2029 escaped, map keys sorted, nil slices and
	// maps as null, escape sequences of raw values (a payload, an unknown
	// member) kept, a raw value's repeated member names written as they
	// came, and json.Number as a number. Invalid UTF-8 in a Go string
	// becomes U+FFFD instead of an error.
	encodeOptions = json.JoinOptions(
		json.Deterministic(true),
		json.FormatNilSliceAsNull(true),
		json.FormatNilMapAsNull(true),
		jsontext.EscapeForJS(true),
		jsontext.AllowInvalidUTF8(true),
		jsontext.PreserveRawStrings(true),
		jsontext.AllowDuplicateNames(true),
		jsonnumber.Write,
	)
	// verbatimOptions are encodeOptions for a document that holds raw
	// values with U+2028 or U+2029 as characters, and for metadata: the
	// encoder escapes raw values as it escapes Go strings, and a raw value
	// must keep its bytes.
	verbatimOptions = json.JoinOptions(encodeOptions, jsontext.EscapeForJS(false))
	// decodeOptions read what Python reads: a repeated member name is
	// accepted and the last one wins (objects are merged). Names match
	// exactly, as they do in Python.
	decodeOptions = jsontext.AllowDuplicateNames(true)
)

// The wire structs are the JSON of wire-contract section 3, field for field
// and in order. An empty optString is written as null, as Python writes an
// absent Optional[str]; reading, null and absent both give "". Members this
// package does not know are kept, in order, in the Unknown fields, and
// written back after the known ones.
type wireEnvelope struct {
	EventID        string            `json:"event_id"`
	EventType      string            `json:"event_type"`
	Timestamp      string            `json:"timestamp"`
	Version        string            `json:"version"`
	Source         *wireSource       `json:"source"`
	CorrelationIDs []string          `json:"correlation_ids"`
	AgentContext   *wireAgentContext `json:"agent_context"`
	Payload        payloadValue      `json:"payload"`
	Unknown        jsontext.Value    `json:",embed"`
}

// payloadValue is the payload member, raw JSON. Read from a body that may
// be kept (see DecodeDelivery), it is the member's own bytes in that body
// rather than a copy: the payload is most of a body, and a consumer would
// otherwise hold it twice.
type payloadValue struct {
	raw  jsontext.Value
	body []byte // the body being read, when the payload may point into it
}

func (p payloadValue) MarshalJSONTo(enc *jsontext.Encoder) error { return enc.WriteValue(p.raw) }

func (p *payloadValue) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	// The value read ends at the decoder's input offset; the bytes there
	// are checked rather than assumed to be the same ones.
	end := int(dec.InputOffset())
	if start := end - len(v); p.body != nil && start >= 0 && end <= len(p.body) && bytes.Equal(p.body[start:end], v) {
		p.raw = jsontext.Value(p.body[start:end:end]) // an append must not write over the body
	} else {
		p.raw = bytes.Clone(v)
	}
	return nil
}

type wireSource struct {
	Host    string         `json:"host"`
	Type    string         `json:"type"`
	App     optString      `json:"app"`
	Meta    map[string]any `json:"meta"`
	Unknown jsontext.Value `json:",embed"`
}

type wireAgentContext struct {
	Type           optString      `json:"type"`
	Name           optString      `json:"name"`
	SystemPrompt   optString      `json:"system_prompt"`
	InstanceID     optString      `json:"instance_id"`
	MCPServers     []string       `json:"mcp_servers"`
	FileReferences []string       `json:"file_references"`
	URLReferences  []string       `json:"url_references"`
	CodeState      *wireCodeState `json:"code_state"`
	CheckpointID   optString      `json:"checkpoint_id"`
	Meta           map[string]any `json:"meta"`
	Unknown        jsontext.Value `json:",embed"`
}

type wireCodeState struct {
	RepoURL        optString      `json:"repo_url"`
	Branch         optString      `json:"branch"`
	WorkingDiff    optString      `json:"working_diff"`
	BranchDiff     optString      `json:"branch_diff"`
	LastCommitHash optString      `json:"last_commit_hash"`
	Unknown        jsontext.Value `json:",embed"`
}

// optString is a string written as null when empty.
type optString string

func (s optString) MarshalJSONTo(enc *jsontext.Encoder) error {
	if s == "" {
		return enc.WriteToken(jsontext.Null)
	}
	return enc.WriteToken(jsontext.String(string(s)))
}

// unknownMembers are the members of a decoded body that this package does
// not know, one JSON object per level, so that a relay writes them back.
type unknownMembers struct {
	top, source, agentContext, codeState jsontext.Value
}

// MarshalJSON writes the envelope as the compact v1 JSON object, with null
// for absent optional fields, [] for no correlation ids, and the members a
// decoded body had that this package does not know after the known ones.
func (e Envelope) MarshalJSON() ([]byte, error) {
	if len(e.Payload) == 0 {
		return nil, errors.New("cannot encode envelope: payload is empty")
	}
	opts := encodeOptions
	if hasLineSeparator(e.Payload) || hasLineSeparator(e.unknown.top) || hasLineSeparator(e.unknown.source) ||
		hasLineSeparator(e.unknown.agentContext) || hasLineSeparator(e.unknown.codeState) {
		opts = verbatimOptions
	}
	b, err := json.Marshal(e.wire(new(wireBody)), opts)
	if err != nil {
		return nil, fmt.Errorf("cannot encode envelope %s: %w", e.EventID, err)
	}
	return b, nil
}

// hasLineSeparator reports whether raw JSON holds U+2028 or U+2029 as a
// character rather than an escape.
func hasLineSeparator(b []byte) bool {
	return bytes.Contains(b, []byte("\u2028")) || bytes.Contains(b, []byte("\u2029"))
}

// wireBody holds the wire structs of one envelope, so that writing one
// allocates them together.
type wireBody struct {
	env wireEnvelope
	src wireSource
	ac  wireAgentContext
	cs  wireCodeState
}

// wire fills b with the wire form of e.
func (e Envelope) wire(b *wireBody) *wireEnvelope {
	ids := make([]string, len(e.CorrelationIDs)) // never nil: written as []
	for i, id := range e.CorrelationIDs {
		ids[i] = id.String()
	}
	b.src = wireSource{Host: e.Source.Host, Type: string(e.Source.Type), App: optString(e.Source.App), Meta: e.Source.Meta, Unknown: e.unknown.source}
	b.env = wireEnvelope{EventID: e.EventID.String(), EventType: e.EventType, Timestamp: FormatTimestamp(e.Timestamp),
		Version: cmp.Or(e.Version, Version), Source: &b.src, CorrelationIDs: ids, AgentContext: e.agentContextWire(b),
		Payload: payloadValue{raw: jsontext.Value(e.Payload)}, Unknown: e.unknown.top}
	return &b.env
}

// agentContextWire fills b's agent context and code state with the wire
// form of e's, or returns nil when e has none.
func (e Envelope) agentContextWire(b *wireBody) *wireAgentContext {
	ac := e.AgentContext
	if ac == nil {
		return nil
	}
	b.ac = wireAgentContext{Type: optString(ac.Type), Name: optString(ac.Name), SystemPrompt: optString(ac.SystemPrompt),
		InstanceID: optString(ac.InstanceID), MCPServers: ac.MCPServers, FileReferences: ac.FileReferences,
		URLReferences: ac.URLReferences, CheckpointID: optString(ac.CheckpointID), Meta: ac.Meta, Unknown: e.unknown.agentContext}
	if cs := ac.CodeState; cs != nil {
		b.cs = wireCodeState{RepoURL: optString(cs.RepoURL), Branch: optString(cs.Branch), WorkingDiff: optString(cs.WorkingDiff),
			BranchDiff: optString(cs.BranchDiff), LastCommitHash: optString(cs.LastCommitHash), Unknown: e.unknown.codeState}
		b.ac.CodeState = &b.cs
	}
	return &b.ac
}

// agentContext reads the wire form back, with the unknown members of the
// agent context and its code state into u.
func (w *wireAgentContext) agentContext(u *unknownMembers) *AgentContext {
	ac := &AgentContext{Type: AgentType(w.Type), Name: string(w.Name), SystemPrompt: string(w.SystemPrompt),
		InstanceID: string(w.InstanceID), MCPServers: w.MCPServers, FileReferences: w.FileReferences,
		URLReferences: w.URLReferences, CheckpointID: string(w.CheckpointID), Meta: w.Meta}
	u.agentContext = w.Unknown
	if cs := w.CodeState; cs != nil {
		ac.CodeState = &CodeState{RepoURL: string(cs.RepoURL), Branch: string(cs.Branch), WorkingDiff: string(cs.WorkingDiff),
			BranchDiff: string(cs.BranchDiff), LastCommitHash: string(cs.LastCommitHash)}
		u.codeState = cs.Unknown
	}
	return ac
}

// UnmarshalJSON reads a v1 envelope as Decode does. JSON null leaves the
// envelope unchanged, as encoding/json does for other types.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	env, err := Decode(b)
	if err != nil {
		return err
	}
	*e = env
	return nil
}

// Decode reads a v1 envelope body. It is lenient where the Python writers
// differ (null and missing optional fields are the same, every timestamp
// form of ParseTimestamp is accepted, a missing version or correlation_ids
// takes its default) and strict where a consumer could not act on the
// event. Members it does not know, at any level, are kept for MarshalJSON
// and NewMessage to write back. Any failure is a *MalformedError.
func Decode(body []byte) (Envelope, error) {
	env, _, err := decode(body, false, false)
	return env, err
}

// DecodeNew is Decode for an envelope about to be published, such as one
// posted to a gateway, as Python's EventEnvelope model builds it from a
// request: a missing event_id becomes a new random UUID and a missing
// timestamp the current time.
func DecodeNew(body []byte) (Envelope, error) {
	env, _, err := decode(body, true, false)
	return env, err
}

// decode reads body into an envelope and returns the wire form it was read
// from as well. With keep, the envelope's payload is a slice of body, which
// the caller must then never change.
func decode(body []byte, fill, keep bool) (Envelope, *wireEnvelope, error) {
	if kind := jsonKind(body); kind != "object" {
		return Envelope{}, nil, &MalformedError{Reason: describeNonObject(body, kind)}
	}
	w := new(wireEnvelope)
	if keep {
		w.Payload.body = body
	}
	if err := json.Unmarshal(body, w, decodeOptions); err != nil {
		return Envelope{}, nil, &MalformedError{Reason: describeDecodeError(body, err)}
	}
	var env Envelope
	var problems []string
	switch {
	case w.EventID == "" && fill:
		env.EventID = uuid.New()
	case w.EventID == "":
		problems = append(problems, "event_id: required")
	default:
		if id, err := uuid.Parse(w.EventID); err != nil {
			problems = append(problems, fmt.Sprintf("event_id: %q is not a UUID", truncate(w.EventID, 64)))
		} else {
			env.EventID = id
		}
	}
	if env.EventType = w.EventType; env.EventType == "" {
		problems = append(problems, "event_type: required")
	}
	if w.Timestamp == "" && fill {
		env.Timestamp = time.Now().UTC().Truncate(time.Microsecond)
	} else if w.Timestamp == "" {
		problems = append(problems, "timestamp: required")
	} else if ts, err := ParseTimestamp(w.Timestamp); err != nil {
		problems = append(problems, "timestamp: "+err.Error())
	} else {
		env.Timestamp = ts
	}
	env.Version = cmp.Or(w.Version, Version)
	if w.Source == nil {
		problems = append(problems, "source: required")
	} else {
		env.Source = Source{Host: w.Source.Host, Type: TriggerType(w.Source.Type), App: string(w.Source.App), Meta: w.Source.Meta}
		env.unknown.source = w.Source.Unknown
		if env.Source.Host == "" {
			problems = append(problems, "source.host: required")
		}
		if env.Source.Type == "" {
			problems = append(problems, "source.type: required")
		}
	}
	env.CorrelationIDs = make([]uuid.UUID, 0, len(w.CorrelationIDs))
	for i, c := range w.CorrelationIDs {
		id, err := uuid.Parse(c)
		if err != nil {
			problems = append(problems, fmt.Sprintf("correlation_ids[%d]: %q is not a UUID", i, truncate(c, 64)))
			continue
		}
		env.CorrelationIDs = append(env.CorrelationIDs, id)
	}
	if w.AgentContext != nil {
		env.AgentContext = w.AgentContext.agentContext(&env.unknown)
		if env.AgentContext.Type == "" {
			problems = append(problems, "agent_context.type: required")
		}
	}
	switch kind := jsonKind(w.Payload.raw); kind {
	case "object":
		env.Payload = []byte(w.Payload.raw)
	case "missing", "null":
		problems = append(problems, "payload: required")
	default:
		problems = append(problems, "payload: expected object, got "+kind)
	}
	env.unknown.top = w.Unknown
	if len(problems) > 0 {
		return Envelope{}, nil, &MalformedError{Reason: strings.Join(problems, "; ")}
	}
	return env, w, nil
}

// jsonKind names the JSON type of a value from its first byte, which is all
// the codec needs to classify a body without decoding it.
func jsonKind(b []byte) string {
	switch k := jsontext.Value(b).Kind(); {
	case k != 0 && k != '}' && k != ']':
		return kindName(k)
	case len(bytes.Trim(b, " \t\r\n")) == 0:
		return "missing"
	}
	return "not JSON"
}

// describeNonObject says what a body that does not start with '{' is.
func describeNonObject(body []byte, kind string) string {
	switch {
	case !utf8.Valid(body):
		return "body is not valid UTF-8"
	case kind == "missing":
		return "body is empty, want an envelope object"
	case kind == "not JSON" || !jsontext.Value(body).IsValid(decodeOptions):
		return "body is not JSON, want an envelope object"
	}
	return "body is a JSON " + kind + ", want an envelope object"
}

// describeDecodeError turns a decoding error into a reason naming the field
// at fault in the envelope's terms ("source.host: expected string, got
// number").
func describeDecodeError(body []byte, err error) string {
	if !utf8.Valid(body) {
		return "body is not valid UTF-8"
	}
	var semErr *json.SemanticError
	if errors.As(err, &semErr) && semErr.JSONPointer != "" && semErr.GoType != nil {
		return fmt.Sprintf("%s: expected %s, got %s", fieldPath(semErr.JSONPointer), jsonTypeOf(semErr.GoType), kindName(semErr.JSONKind))
	}
	var synErr *jsontext.SyntacticError
	if errors.As(err, &synErr) {
		return fmt.Sprintf("body is not JSON: %v (at byte %d)", synErr.Err, synErr.ByteOffset)
	}
	return "body is not a valid envelope: " + err.Error()
}

// fieldPath writes a JSON pointer as a field path: /source/host is
// source.host, /correlation_ids/1 is correlation_ids[1].
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		switch {
		case tok != "" && strings.Trim(tok, "0123456789") == "":
			b.WriteString("[" + tok + "]")
		case b.Len() > 0:
			b.WriteString("." + tok)
		default:
			b.WriteString(tok)
		}
	}
	return b.String()
}

// jsonTypeOf names the JSON type a Go type decodes from.
func jsonTypeOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Bool:
		return "boolean"
	case reflect.Interface:
		return "any value"
	}
	return "number"
}

// kindName names a JSON kind as jsonKind does: "boolean", not "true".
func kindName(k jsontext.Kind) string {
	switch k {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	}
	return k.String()
}
