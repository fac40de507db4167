package envelope

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
)

// Version is the envelope schema version every Bloodbank v1 writer emits.
const Version = "1.0.0"

// DefaultExchange is the topic exchange every Bloodbank v1 event travels
// on (wire-contract section 1); EXCHANGE_NAME may name another.
const DefaultExchange = "bloodbank.events.v1"

// TriggerType says what started an event (the envelope's source.type).
// Readers accept values they do not know, so a new trigger type added by a
// Python service does not make Go consumers reject its events.
type TriggerType string

// The trigger types of wire-contract section 3, and the two that Python's
// TriggerType has gained since (webhook, service).
const (
	TriggerManual    TriggerType = "manual"
	TriggerAgent     TriggerType = "agent"
	TriggerScheduled TriggerType = "scheduled"
	TriggerFileWatch TriggerType = "file_watch"
	TriggerHook      TriggerType = "hook"
	TriggerHeartbeat TriggerType = "heartbeat"
	TriggerWebhook   TriggerType = "webhook"
	TriggerService   TriggerType = "service"
)

// TriggerTypes lists the trigger types in Python's order.
var TriggerTypes = []TriggerType{TriggerManual, TriggerAgent, TriggerScheduled, TriggerFileWatch, TriggerHook, TriggerHeartbeat, TriggerWebhook, TriggerService}

// AgentType names the kind of AI agent in an envelope's agent_context.
type AgentType string

// The agent types of wire-contract section 3.
const (
	AgentClaudeCode  AgentType = "claude-code"
	AgentClaudeChat  AgentType = "claude-chat"
	AgentGeminiCLI   AgentType = "gemini-cli"
	AgentGeminiCode  AgentType = "gemini-code"
	AgentLetta       AgentType = "letta"
	AgentAgno        AgentType = "agno"
	AgentSmolagent   AgentType = "smolagent"
	AgentAtomicAgent AgentType = "atomic-agent"
	AgentCustom      AgentType = "custom"
)

// Source identifies where an event came from. An empty App is written as
// JSON null, as Python writes an absent Optional[str].
type Source struct {
	Host string         `json:"host"`
	Type TriggerType    `json:"type"`
	App  string         `json:"app"`
	Meta map[string]any `json:"meta"`
}

// CodeState is the repository state an agent worked on. Empty fields are
// written as JSON null.
type CodeState struct {
	RepoURL        string
	Branch         string
	WorkingDiff    string
	BranchDiff     string
	LastCommitHash string
}

// AgentContext describes the AI agent behind an event. Only Type is
// required; empty strings, nil slices and nil maps are written as JSON null.
type AgentContext struct {
	Type           AgentType
	Name           string
	SystemPrompt   string
	InstanceID     string
	MCPServers     []string
	FileReferences []string
	URLReferences  []string
	CodeState      *CodeState
	CheckpointID   string
	Meta           map[string]any
}

// Envelope is a Bloodbank v1 event, the JSON object of wire-contract
// section 3. Payload holds the payload's JSON object as it travels;
// DecodePayload turns it into a Go value. An envelope from Decode or
// FromMessage also carries the members of the body that this package does
// not know, so that a service relaying it writes them back unchanged.
type Envelope struct {
	EventID        uuid.UUID
	EventType      string
	Timestamp      time.Time
	Version        string
	Source         Source
	CorrelationIDs []uuid.UUID
	AgentContext   *AgentContext
	Payload        json.RawMessage

	unknown unknownMembers
}

// Option sets an optional part of an envelope built by New.
type Option func(*Envelope)

// WithSource sets the envelope's source.
func WithSource(s Source) Option { return func(e *Envelope) { e.Source = s } }

// WithCorrelationIDs sets the parent events that caused this one.
func WithCorrelationIDs(ids ...uuid.UUID) Option {
	return func(e *Envelope) { e.CorrelationIDs = slices.Clone(ids) }
}

// WithAgentContext sets the envelope's agent context.
func WithAgentContext(ac *AgentContext) Option { return func(e *Envelope) { e.AgentContext = ac } }

// WithEventID sets an explicit event id, such as one from DeterministicID,
// instead of a random one.
func WithEventID(id uuid.UUID) Option { return func(e *Envelope) { e.EventID = id } }

// WithTimestamp sets the envelope's timestamp instead of now.
func WithTimestamp(t time.Time) Option { return func(e *Envelope) { e.Timestamp = NewTime(t).Time } }

// New wraps payload (any value that encodes to a JSON object, or
// json.RawMessage) in an envelope for eventType with a random v4 event id,
// the current time, version 1.0.0 and no parents; options change any of
// these. Without WithSource the source is this host, type manual.
func New(eventType string, payload any, opts ...Option) (Envelope, error) {
	raw, err := encodePayload(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("cannot encode %s payload: %w", eventType, err)
	}
	env := Envelope{
		EventID:        uuid.New(),
		EventType:      eventType,
		Timestamp:      time.Now().UTC().Truncate(time.Microsecond),
		Version:        Version,
		Source:         Source{Host: Hostname(), Type: TriggerManual},
		CorrelationIDs: []uuid.UUID{},
		Payload:        raw,
	}
	for _, opt := range opts {
		opt(&env)
	}
	// A payload the encoder wrote is valid JSON; only raw bytes from the
	// caller need reading again.
	_, isRaw := payload.(json.RawMessage)
	if _, isBytes := payload.([]byte); isBytes {
		isRaw = true
	}
	if err := env.validate(isRaw); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

// NewHTTP is New for an event received over HTTP, as the
// Python create_http_envelope builds it: source host is the client's
// address, type manual, app appName (default "http-client").
func NewHTTP(eventType string, payload any, clientHost, appName string, opts ...Option) (Envelope, error) {
	if appName == "" {
		appName = "http-client"
	}
	src := Source{Host: clientHost, Type: TriggerManual, App: appName}
	return New(eventType, payload, append([]Option{WithSource(src)}, opts...)...)
}

// NewAgent is New for an event an AI agent emits, as the
// Python create_agent_envelope builds it: source type agent with the agent's
// name as app, and an agent context of agentType and agentName.
func NewAgent(eventType string, payload any, agentType AgentType, agentName string, opts ...Option) (Envelope, error) {
	src := Source{Host: Hostname(), Type: TriggerAgent, App: agentName}
	base := []Option{WithSource(src), WithAgentContext(&AgentContext{Type: agentType, Name: agentName})}
	return New(eventType, payload, append(base, opts...)...)
}

// NewScheduled is New for an event a scheduler emits, as the
// Python create_scheduled_envelope builds it: source type scheduled with the
// scheduler's name as app.
func NewScheduled(eventType string, payload any, scheduler string, opts ...Option) (Envelope, error) {
	src := Source{Host: Hostname(), Type: TriggerScheduled, App: scheduler}
	return New(eventType, payload, append([]Option{WithSource(src)}, opts...)...)
}

// Validate reports what makes e unfit to publish: no event id or type, no
// source host or type, a payload that is not a JSON object.
func (e Envelope) Validate() error { return e.validate(true) }

// validate is Validate; payloadSyntax false skips the JSON syntax check
// that encoding makes anyway.
func (e Envelope) validate(payloadSyntax bool) error {
	var problems []string
	if e.EventID == uuid.Nil {
		problems = append(problems, "event_id: required")
	}
	if e.EventType == "" {
		problems = append(problems, "event_type: required")
	}
	if e.Source.Host == "" {
		problems = append(problems, "source.host: required")
	}
	if e.Source.Type == "" {
		problems = append(problems, "source.type: required")
	}
	if e.AgentContext != nil && e.AgentContext.Type == "" {
		problems = append(problems, "agent_context.type: required")
	}
	if kind := jsonKind(e.Payload); kind != "object" {
		problems = append(problems, "payload: expected object, got "+kind)
	} else if payloadSyntax && !jsontext.Value(e.Payload).IsValid(decodeOptions) {
		problems = append(problems, "payload: not valid JSON")
	}
	if len(problems) > 0 {
		return &InvalidError{Problems: problems}
	}
	return nil
}

var hostname = func() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}()

// Hostname is this machine's host name, the default source host.
func Hostname() string { return hostname }
