package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// The wire structs mirror the JSON of wire-contract section 3 field for
// field and in order. Optional strings are pointers so that absent values
// are written as null, as the Python writers do.
type wireEnvelope struct {
	EventID        *string           `json:"event_id"`
	EventType      *string           `json:"event_type"`
	Timestamp      *string           `json:"timestamp"`
	Version        *string           `json:"version"`
	Source         *wireSource       `json:"source"`
	CorrelationIDs []string          `json:"correlation_ids"`
	AgentContext   *wireAgentContext `json:"agent_context"`
	Payload        json.RawMessage   `json:"payload"`
}

type wireSource struct {
	Host *string        `json:"host"`
	Type *string        `json:"type"`
	App  *string        `json:"app"`
	Meta map[string]any `json:"meta"`
}

type wireCodeState struct {
	RepoURL        *string `json:"repo_url"`
	Branch         *string `json:"branch"`
	WorkingDiff    *string `json:"working_diff"`
	BranchDiff     *string `json:"branch_diff"`
	LastCommitHash *string `json:"last_commit_hash"`
}

type wireAgentContext struct {
	Type           *string        `json:"type"`
	Name           *string        `json:"name"`
	SystemPrompt   *string        `json:"system_prompt"`
	InstanceID     *string        `json:"instance_id"`
	MCPServers     []string       `json:"mcp_servers"`
	FileReferences []string       `json:"file_references"`
	URLReferences  []string       `json:"url_references"`
	CodeState      *wireCodeState `json:"code_state"`
	CheckpointID   *string        `json:"checkpoint_id"`
	Meta           map[string]any `json:"meta"`
}

func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func val(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// MarshalJSON writes the envelope as the compact v1 JSON object, with null
// for absent optional fields and [] for no correlation ids.
func (e Envelope) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(256 + len(e.Payload))
	if err := e.encode(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encode appends the envelope to buf as compact JSON, with no newline.
//
// It writes, byte for byte, what encoding/json writes for the wire structs
// above with SetEscapeHTML(false) (codec_bench_test.go checks the two
// agree), without reflection: the fixed fields are appended directly,
// strings are escaped as encoding/json escapes them, and only the free-form
// maps (source.meta, agent_context.meta) go through encoding/json. The
// payload is compacted as encoding/json compacts a json.RawMessage, which
// also checks that it is JSON. HTML characters are not escaped: Python's
// json.dumps does not escape <, > and & either, so a body round-trips
// between the two without growing.
func (e Envelope) encode(buf *bytes.Buffer) error {
	if len(e.Payload) == 0 {
		return errors.New("cannot encode envelope: payload is empty")
	}
	ver := e.Version
	if ver == "" {
		ver = Version
	}
	buf.Grow(320 + len(e.Payload) + 40*len(e.CorrelationIDs))
	b := buf.AvailableBuffer()
	b = append(b, `{"event_id":"`...)
	b = appendUUID(b, e.EventID)
	b = append(b, `","event_type":`...)
	b = appendJSONString(b, e.EventType)
	b = append(b, `,"timestamp":"`...)
	b = e.Timestamp.UTC().AppendFormat(b, TimestampLayout)
	b = append(b, `","version":`...)
	b = appendJSONString(b, ver)
	b = append(b, `,"source":{"host":`...)
	b = appendJSONString(b, e.Source.Host)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, string(e.Source.Type))
	b = append(b, `,"app":`...)
	b = appendOptString(b, e.Source.App)
	b = append(b, `,"meta":`...)
	b, err := appendJSONValue(b, e.Source.Meta)
	if err != nil {
		return fmt.Errorf("cannot encode envelope %s: %w", e.EventID, err)
	}
	b = append(b, `},"correlation_ids":[`...)
	for i, c := range e.CorrelationIDs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = appendUUID(b, c)
		b = append(b, '"')
	}
	b = append(b, `],"agent_context":`...)
	if b, err = e.AgentContext.appendJSON(b); err != nil {
		return fmt.Errorf("cannot encode envelope %s: %w", e.EventID, err)
	}
	b = append(b, `,"payload":`...)
	buf.Write(b)
	if compactJSON(e.Payload) {
		buf.Write(e.Payload)
	} else if err := json.Compact(buf, e.Payload); err != nil {
		return fmt.Errorf("cannot encode envelope %s: %w", e.EventID,
			&json.MarshalerError{Type: reflect.TypeFor[json.RawMessage](), Err: err})
	}
	buf.WriteByte('}')
	return nil
}

// fieldsValid reports whether e passes every check of Validate except the
// scan of the payload for valid JSON, which encode makes as it compacts it.
func (e Envelope) fieldsValid() bool {
	return e.EventID != uuid.Nil && e.EventType != "" && e.Source.Host != "" && e.Source.Type != "" &&
		(e.AgentContext == nil || e.AgentContext.Type != "") && jsonKind(e.Payload) == "object"
}

// appendJSON appends the agent context as its wire object, or null.
func (ac *AgentContext) appendJSON(b []byte) ([]byte, error) {
	if ac == nil {
		return append(b, "null"...), nil
	}
	b = append(b, `{"type":`...)
	b = appendOptString(b, string(ac.Type))
	b = append(b, `,"name":`...)
	b = appendOptString(b, ac.Name)
	b = append(b, `,"system_prompt":`...)
	b = appendOptString(b, ac.SystemPrompt)
	b = append(b, `,"instance_id":`...)
	b = appendOptString(b, ac.InstanceID)
	b = append(b, `,"mcp_servers":`...)
	b = appendStrings(b, ac.MCPServers)
	b = append(b, `,"file_references":`...)
	b = appendStrings(b, ac.FileReferences)
	b = append(b, `,"url_references":`...)
	b = appendStrings(b, ac.URLReferences)
	b = append(b, `,"code_state":`...)
	if cs := ac.CodeState; cs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"repo_url":`...)
		b = appendOptString(b, cs.RepoURL)
		b = append(b, `,"branch":`...)
		b = appendOptString(b, cs.Branch)
		b = append(b, `,"working_diff":`...)
		b = appendOptString(b, cs.WorkingDiff)
		b = append(b, `,"branch_diff":`...)
		b = appendOptString(b, cs.BranchDiff)
		b = append(b, `,"last_commit_hash":`...)
		b = appendOptString(b, cs.LastCommitHash)
		b = append(b, '}')
	}
	b = append(b, `,"checkpoint_id":`...)
	b = appendOptString(b, ac.CheckpointID)
	b = append(b, `,"meta":`...)
	b, err := appendJSONValue(b, ac.Meta)
	if err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

// appendOptString appends s, or null when it is empty.
func appendOptString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, s)
}

// appendStrings appends a JSON array of strings, or null for a nil slice.
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONValue appends a free-form map as encoding/json writes it (keys
// sorted, no HTML escaping), or null for a nil map.
func appendJSONValue(b []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return b, err
	}
	return append(b, bytes.TrimRight(buf.Bytes(), "\n")...), nil
}

const hexDigits = "0123456789abcdef"

// appendUUID appends id in its canonical form, as uuid.UUID.String writes it.
func appendUUID(b []byte, id uuid.UUID) []byte {
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0x0f])
	}
	return b
}

// appendJSONString appends s as a JSON string exactly as encoding/json does
// with HTML escaping off: ", \ and control characters escaped (\b, \f, \n,
// \r, \t by name, the others as \u00XX), invalid UTF-8 replaced by \ufffd,
// and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (ac *AgentContext) wire() *wireAgentContext {
	if ac == nil {
		return nil
	}
	w := &wireAgentContext{
		Type:           opt(string(ac.Type)),
		Name:           opt(ac.Name),
		SystemPrompt:   opt(ac.SystemPrompt),
		InstanceID:     opt(ac.InstanceID),
		MCPServers:     ac.MCPServers,
		FileReferences: ac.FileReferences,
		URLReferences:  ac.URLReferences,
		CheckpointID:   opt(ac.CheckpointID),
		Meta:           ac.Meta,
	}
	if cs := ac.CodeState; cs != nil {
		w.CodeState = &wireCodeState{
			RepoURL: opt(cs.RepoURL), Branch: opt(cs.Branch), WorkingDiff: opt(cs.WorkingDiff),
			BranchDiff: opt(cs.BranchDiff), LastCommitHash: opt(cs.LastCommitHash),
		}
	}
	return w
}

func (w *wireAgentContext) agentContext() *AgentContext {
	ac := &AgentContext{
		Type:           AgentType(val(w.Type)),
		Name:           val(w.Name),
		SystemPrompt:   val(w.SystemPrompt),
		InstanceID:     val(w.InstanceID),
		MCPServers:     w.MCPServers,
		FileReferences: w.FileReferences,
		URLReferences:  w.URLReferences,
		CheckpointID:   val(w.CheckpointID),
		Meta:           w.Meta,
	}
	if cs := w.CodeState; cs != nil {
		ac.CodeState = &CodeState{
			RepoURL: val(cs.RepoURL), Branch: val(cs.Branch), WorkingDiff: val(cs.WorkingDiff),
			BranchDiff: val(cs.BranchDiff), LastCommitHash: val(cs.LastCommitHash),
		}
	}
	return ac
}

// UnmarshalJSON reads a v1 envelope as Decode does. JSON null
// leaves the envelope unchanged, as encoding/json does for other types.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	env, err := Decode(b)
	if err != nil {
		return err
	}
	*e = env
	return nil
}

// Decode reads a v1 envelope body. It is lenient where the Python
// writers differ (null and missing optional fields are the same, unknown
// fields are ignored, every timestamp form of ParseTimestamp is accepted, a
// missing version or correlation_ids takes its default) and strict where a
// consumer could not act on the event. Any failure is a *MalformedError.
func Decode(body []byte) (Envelope, error) {
	if env, ok := decodeFast(body); ok {
		return env, nil
	}
	return decodeReflect(body)
}

// decodeReflect is Decode on encoding/json: every body the fast
// path leaves, and the wording of every error.
func decodeReflect(body []byte) (Envelope, error) {
	if !utf8.Valid(body) {
		return Envelope{}, &MalformedError{Reason: "body is not valid UTF-8"}
	}
	if kind := jsonKind(body); kind != "object" {
		if kind != "missing" && !json.Valid(body) {
			kind = "not JSON"
		}
		return Envelope{}, &MalformedError{Reason: "body is " + article(kind) + ", want an envelope object"}
	}
	var w wireEnvelope
	if err := json.Unmarshal(body, &w); err != nil {
		return Envelope{}, &MalformedError{Reason: describeJSONError(err)}
	}
	var env Envelope
	var problems []string
	switch {
	case w.EventID == nil:
		problems = append(problems, "event_id: required")
	default:
		id, err := uuid.Parse(*w.EventID)
		if err != nil {
			problems = append(problems, fmt.Sprintf("event_id: %q is not a UUID", truncate(*w.EventID, 64)))
		}
		env.EventID = id
	}
	if env.EventType = val(w.EventType); env.EventType == "" {
		problems = append(problems, "event_type: required")
	}
	if w.Timestamp == nil {
		problems = append(problems, "timestamp: required")
	} else if ts, err := ParseTimestamp(*w.Timestamp); err != nil {
		problems = append(problems, "timestamp: "+err.Error())
	} else {
		env.Timestamp = ts
	}
	if env.Version = val(w.Version); env.Version == "" {
		env.Version = Version
	}
	if w.Source == nil {
		problems = append(problems, "source: required")
	} else {
		env.Source = Source{Host: val(w.Source.Host), Type: TriggerType(val(w.Source.Type)), App: val(w.Source.App), Meta: w.Source.Meta}
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
		env.AgentContext = w.AgentContext.agentContext()
		if env.AgentContext.Type == "" {
			problems = append(problems, "agent_context.type: required")
		}
	}
	switch kind := jsonKind(w.Payload); kind {
	case "object":
		env.Payload = w.Payload
	case "missing", "null":
		problems = append(problems, "payload: required")
	default:
		problems = append(problems, "payload: expected object, got "+kind)
	}
	if len(problems) > 0 {
		return Envelope{}, &MalformedError{Reason: joinProblems(problems)}
	}
	return env, nil
}

func joinProblems(p []string) string {
	var b bytes.Buffer
	for i, s := range p {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// jsonKind names the JSON type of a value from its first byte, which is all
// the codec needs to classify a body without decoding it twice.
func jsonKind(b []byte) string {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return "missing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	}
	return "not JSON"
}

func article(kind string) string {
	switch kind {
	case "missing":
		return "empty"
	case "not JSON":
		return "not JSON"
	}
	return "a JSON " + kind
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("%s: expected %s, got %s", typeErr.Field, goKindToJSON(typeErr.Type.Kind().String()), typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Sprintf("body is not JSON: %v (at byte %d)", syntaxErr, syntaxErr.Offset)
	}
	return "body is not a valid envelope: " + err.Error()
}

func goKindToJSON(kind string) string {
	switch kind {
	case "string", "ptr":
		return "string"
	case "slice":
		return "array"
	case "map", "struct":
		return "object"
	}
	return kind
}

// compactJSON reports whether b is one valid JSON value with no
// insignificant space, which json.Compact would copy unchanged. It is a
// fast path only: false means "not sure", and the caller then runs
// json.Compact, which also reports what is wrong. It accepts no more than
// encoding/json's scanner does: bytes of 0x20 and above in strings as they
// are (the scanner does not check UTF-8 either), the escapes of RFC 8259,
// and numbers in its grammar; it gives up on nesting deeper than 64.
func compactJSON(b []byte) bool {
	end, ok := scanValue(b, 0, 0, false)
	return ok && end == len(b)
}

// skipWS skips insignificant space when ws allows it.
func skipWS(b []byte, i int, ws bool) int {
	for ws && i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanValue reads the value at b[i] and returns the index after it; ok is
// false for anything that is not a valid value, or that has insignificant
// space in it when ws is false. With ws, space is skipped between tokens,
// not before or after the value.
func scanValue(b []byte, i, depth int, ws bool) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; c {
	case '{':
		if depth >= 64 {
			return i, false
		}
		i = skipWS(b, i+1, ws)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			var ok bool
			if i, ok = scanString(b, i); !ok {
				return i, false
			}
			if i = skipWS(b, i, ws); i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = scanValue(b, skipWS(b, i+1, ws), depth+1, ws); !ok {
				return i, false
			}
			if i = skipWS(b, i, ws); i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1, ws)
			case '}':
				return i + 1, true
			default:
				return i, false
			}
		}
	case '[':
		if depth >= 64 {
			return i, false
		}
		i = skipWS(b, i+1, ws)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = scanValue(b, i, depth+1, ws); !ok {
				return i, false
			}
			if i = skipWS(b, i, ws); i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1, ws)
			case ']':
				return i + 1, true
			default:
				return i, false
			}
		}
	case '"':
		return scanString(b, i)
	case 't':
		return scanLiteral(b, i, "true")
	case 'f':
		return scanLiteral(b, i, "false")
	case 'n':
		return scanLiteral(b, i, "null")
	default:
		return scanNumber(b, i)
	}
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// plainStringByte marks the bytes a JSON string holds as they are: not a
// quote, a backslash or a control character.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString reads the string whose opening quote is at b[i].
func scanString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		// Most bytes are plain: skip them eight at a time.
		for i+8 <= len(b) && plainStringByte[b[i]] && plainStringByte[b[i+1]] && plainStringByte[b[i+2]] &&
			plainStringByte[b[i+3]] && plainStringByte[b[i+4]] && plainStringByte[b[i+5]] && plainStringByte[b[i+6]] && plainStringByte[b[i+7]] {
			i += 8
		}
		for i < len(b) && plainStringByte[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, false
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = scanDigits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := scanDigits(b, i+1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := scanDigits(b, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

func scanDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// decodeFast reads the common envelope in one pass, without reflection.
// It succeeds only where the encoding/json path below would give the same
// envelope with no error: a valid UTF-8 body, valid JSON, every field of
// the right JSON type, strings without escapes, each known key once and
// spelled exactly (encoding/json also matches keys case-insensitively),
// and every check of Decode passed. Anything else returns false
// and Decode takes the general path, which also words the error.
// Unknown keys are skipped, and their values checked to be JSON, as there.
func decodeFast(body []byte) (Envelope, bool) {
	var env Envelope
	if !utf8.Valid(body) {
		return env, false
	}
	d := fastDec{b: body}
	var (
		seen              uint16
		id, typ, ts, ver  []byte
		idOK, typOK, tsOK bool
		src               fastSource
		srcOK             bool
		ids               []uuid.UUID
		acRaw, payload    []byte
	)
	ok := d.object(func(key []byte) bool {
		var bit uint16
		var ok bool
		switch string(key) {
		case "event_id":
			bit = 1
			id, idOK, ok = d.optString()
		case "event_type":
			bit = 2
			typ, typOK, ok = d.optString()
		case "timestamp":
			bit = 4
			ts, tsOK, ok = d.optString()
		case "version":
			bit = 8
			ver, _, ok = d.optString()
		case "source":
			bit = 16
			if d.null() {
				ok = true
			} else {
				srcOK, ok = true, d.source(&src)
			}
		case "correlation_ids":
			bit = 32
			ids, ok = d.ids()
		case "agent_context":
			bit = 64
			if d.null() {
				ok = true
			} else {
				acRaw, ok = d.raw()
				ok = ok && len(acRaw) > 0 && acRaw[0] == '{'
			}
		case "payload":
			bit = 128
			payload, ok = d.raw()
			ok = ok && len(payload) > 0 && payload[0] == '{'
		default:
			return !foldsToKnown(key, envelopeFields) && d.skip()
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
	if !ok || skipWS(body, d.i, true) != len(body) {
		return env, false
	}
	// The checks of Decode, in its terms; any failure is left to it.
	if !idOK || !typOK || len(typ) == 0 || !tsOK || !srcOK || len(src.host) == 0 || len(src.typ) == 0 || payload == nil {
		return env, false
	}
	var err error
	if env.EventID, err = uuid.ParseBytes(id); err != nil {
		return env, false
	}
	if env.Timestamp, err = ParseTimestamp(string(ts)); err != nil {
		return env, false
	}
	env.EventType = string(typ)
	env.Version = Version
	if len(ver) > 0 && string(ver) != Version {
		env.Version = string(ver)
	}
	env.Source = Source{Host: string(src.host), Type: TriggerType(src.typ), App: string(src.app)}
	if src.meta != nil {
		if err := json.Unmarshal(src.meta, &env.Source.Meta); err != nil {
			return env, false
		}
	}
	if ids == nil {
		ids = []uuid.UUID{}
	}
	env.CorrelationIDs = ids
	if acRaw != nil {
		var w wireAgentContext
		if err := json.Unmarshal(acRaw, &w); err != nil || w.Type == nil || *w.Type == "" {
			return env, false
		}
		env.AgentContext = w.agentContext()
	}
	// A copy, as encoding/json makes for a json.RawMessage: the envelope
	// must not change when the caller reuses its buffer.
	env.Payload = bytes.Clone(payload)
	return env, true
}

var (
	envelopeFields = []string{"event_id", "event_type", "timestamp", "version", "source", "correlation_ids", "agent_context", "payload"}
	sourceFields   = []string{"host", "type", "app", "meta"}
)

// foldsToKnown reports whether encoding/json could match key to one of
// fields other than exactly: an ASCII case variant, or any key with
// non-ASCII bytes (it also folds the Kelvin sign and the long s).
func foldsToKnown(key []byte, fields []string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	for _, f := range fields {
		if len(f) == len(key) && strings.EqualFold(f, string(key)) {
			return true
		}
	}
	return false
}

type fastSource struct {
	host, typ, app, meta []byte
}

// fastDec reads a JSON document with insignificant space, token by token.
type fastDec struct {
	b []byte
	i int
}

func (d *fastDec) ws() { d.i = skipWS(d.b, d.i, true) }

// object reads an object, calling member with each key; member reads the
// value.
func (d *fastDec) object(member func(key []byte) bool) bool {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return false
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return true
	}
	for {
		key, ok := d.str()
		if !ok {
			return false
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return false
		}
		d.i++
		d.ws()
		if !member(key) {
			return false
		}
		d.ws()
		if d.i >= len(d.b) {
			return false
		}
		switch d.b[d.i] {
		case ',':
			d.i++
			d.ws()
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// str reads a string without escapes and returns its contents.
func (d *fastDec) str() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

func (d *fastDec) null() bool {
	if len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// optString reads a string or null: present is false for null.
func (d *fastDec) optString() (s []byte, present, ok bool) {
	if d.null() {
		return nil, false, true
	}
	s, ok = d.str()
	return s, ok, ok
}

// raw reads any value and returns its bytes.
func (d *fastDec) raw() ([]byte, bool) {
	start := d.i
	end, ok := scanValue(d.b, d.i, 0, true)
	if !ok {
		return nil, false
	}
	d.i = end
	return d.b[start:end], true
}

func (d *fastDec) skip() bool {
	_, ok := d.raw()
	return ok
}

func (d *fastDec) source(s *fastSource) bool {
	var seen uint8
	return d.object(func(key []byte) bool {
		var bit uint8
		var ok bool
		switch string(key) {
		case "host":
			bit = 1
			s.host, _, ok = d.optString()
		case "type":
			bit = 2
			s.typ, _, ok = d.optString()
		case "app":
			bit = 4
			s.app, _, ok = d.optString()
		case "meta":
			bit = 8
			if d.null() {
				ok = true
			} else {
				s.meta, ok = d.raw()
				ok = ok && s.meta[0] == '{'
			}
		default:
			return !foldsToKnown(key, sourceFields) && d.skip()
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
}

// ids reads null or an array of UUID strings.
func (d *fastDec) ids() ([]uuid.UUID, bool) {
	if d.null() {
		return nil, true
	}
	if d.i >= len(d.b) || d.b[d.i] != '[' {
		return nil, false
	}
	d.i++
	d.ws()
	ids := []uuid.UUID{}
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return ids, true
	}
	for {
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		id, err := uuid.ParseBytes(s)
		if err != nil {
			return nil, false
		}
		ids = append(ids, id)
		d.ws()
		if d.i >= len(d.b) {
			return nil, false
		}
		switch d.b[d.i] {
		case ',':
			d.i++
			d.ws()
		case ']':
			d.i++
			return ids, true
		default:
			return nil, false
		}
	}
}
