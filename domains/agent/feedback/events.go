package feedback

import (
	"encoding/json"

	segjson "github.com/segmentio/encoding/json"

	"github.com/33god/bloodbank-go/domains"
)

// Domain is the domain name, as Python's registry lists it.
const Domain = "agent/feedback"

// Routing keys of the domain, part of the wire contract.
const (
	RoutingKeyRequested = "agent.feedback.requested"
	RoutingKeyResponse  = "agent.feedback.response"
)

// Requested asks a specific agent for feedback. Python: AgentFeedbackRequested.
type Requested struct {
	AgentID      string         `json:"agent_id" jsonschema_description:"AgentForge registry ID."`
	Message      string         `json:"message" jsonschema_description:"Message to send to the agent."`
	LettaAgentID *string        `json:"letta_agent_id" jsonschema_description:"Overrides the Letta agent ID."`
	Context      map[string]any `json:"context" jsonschema_description:"Optional context for the agent."`
	Tags         []string       `json:"tags" default:"[]"`
}

// MarshalJSON writes absent tags as [], since Python reads null there as an error.
func (p Requested) MarshalJSON() ([]byte, error) {
	type plain Requested
	if p.Tags == nil {
		p.Tags = []string{}
	}
	return json.Marshal(plain(p))
}

// UnmarshalJSON reads absent or null tags as empty.
func (p *Requested) UnmarshalJSON(b []byte) error {
	type plain Requested
	var v plain
	if err := segjson.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	*p = Requested(v)
	return nil
}

// Response is an agent's feedback, or why there is none. Its envelope's
// correlation_ids names the request. Python: AgentFeedbackResponse.
type Response struct {
	AgentID      string         `json:"agent_id"`
	LettaAgentID *string        `json:"letta_agent_id"`
	Response     string         `json:"response" default:""`
	Status       Status         `json:"status" default:"ok"`
	ErrorMessage *string        `json:"error_message"`
	Metadata     map[string]any `json:"metadata" default:"{}"`
}

// MarshalJSON writes absent metadata as {} and an unset status as "ok".
func (p Response) MarshalJSON() ([]byte, error) {
	type plain Response
	if p.Status == "" {
		p.Status = StatusOK
	}
	if p.Metadata == nil {
		p.Metadata = map[string]any{}
	}
	return json.Marshal(plain(p))
}

// UnmarshalJSON applies Python's defaults: status "ok", empty metadata.
func (p *Response) UnmarshalJSON(b []byte) error {
	type plain Response
	v := plain{Status: StatusOK}
	if err := segjson.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Metadata == nil {
		v.Metadata = map[string]any{}
	}
	*p = Response(v)
	return nil
}

// Status says whether the agent produced feedback.
type Status string

// The statuses the contract allows.
const (
	StatusOK    Status = "ok"
	StatusError Status = "error"
)

// EnumValues makes the schema, and so Validate, reject any other status.
func (Status) EnumValues() []string { return []string{string(StatusOK), string(StatusError)} }

var (
	_ domains.Enum     = Status("")
	_ json.Marshaler   = Requested{}
	_ json.Unmarshaler = (*Requested)(nil)
	_ json.Marshaler   = Response{}
	_ json.Unmarshaler = (*Response)(nil)
)
