package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func (e Envelope) encode(buf *bytes.Buffer) error {
	if len(e.Payload) == 0 {
		return errors.New("cannot encode envelope: payload is empty")
	}
	id, ts, ver := e.EventID.String(), FormatTimestamp(e.Timestamp), e.Version
	if ver == "" {
		ver = EnvelopeVersion
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
	enc := json.NewEncoder(buf)
	// Python's json.dumps does not escape <, > and &; neither do we, so a
	// body round-trips between the two without growing.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return fmt.Errorf("cannot encode envelope %s: %w", id, err)
	}
	return nil
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

// UnmarshalJSON reads a v1 envelope as DecodeEnvelope does. JSON null
// leaves the envelope unchanged, as encoding/json does for other types.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	env, err := DecodeEnvelope(b)
	if err != nil {
		return err
	}
	*e = env
	return nil
}

// DecodeEnvelope reads a v1 envelope body. It is lenient where the Python
// writers differ (null and missing optional fields are the same, unknown
// fields are ignored, every timestamp form of ParseTimestamp is accepted, a
// missing version or correlation_ids takes its default) and strict where a
// consumer could not act on the event. Any failure is a *MalformedError.
func DecodeEnvelope(body []byte) (Envelope, error) {
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
		env.Version = EnvelopeVersion
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
