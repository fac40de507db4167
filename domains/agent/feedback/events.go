package feedback

import (
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

// Status says whether the agent produced feedback.
type Status string

// The statuses the contract allows.
const (
	StatusOK    Status = "ok"
	StatusError Status = "error"
)

// EnumValues makes the schema, and so Validate, reject any other status.
func (Status) EnumValues() []string { return []string{string(StatusOK), string(StatusError)} }

var _ domains.Enum = Status("")
