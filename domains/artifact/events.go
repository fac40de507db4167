package artifact

import (
	"github.com/33god/bloodbank-go/domains"
)

// Domain is the domain name, as Python's registry lists it.
const Domain = "artifact"

// Routing keys of the domain, part of the wire contract. Changed travels
// under RoutingKeyTemplate filled with its action, i.e. one of
// RoutingKeyCreated, RoutingKeyUpdated or RoutingKeyDeleted.
const (
	RoutingKeyTemplate        = "artifact.{action}"
	RoutingKeyCreated         = "artifact.created"
	RoutingKeyUpdated         = "artifact.updated"
	RoutingKeyDeleted         = "artifact.deleted"
	RoutingKeyIngestionFailed = "artifact.ingestion.failed"
)

// Changed reports an artifact's creation, update or deletion. Python calls
// it Artifact; Changed avoids artifact.Artifact.
type Changed struct {
	Action   Action         `json:"action"`
	Kind     string         `json:"kind" jsonschema_description:"e.g. transcript, code, document."`
	URI      string         `json:"uri" jsonschema_description:"File path or URL."`
	Title    *string        `json:"title"`
	Content  *string        `json:"content" jsonschema_description:"The full content, when the producer includes it."`
	Metadata map[string]any `json:"metadata" default:"{}"`
}

// Action is what happened to the artifact; it is also the last word of the
// routing key.
type Action string

// The actions the contract allows.
const (
	ActionCreated Action = "created"
	ActionUpdated Action = "updated"
	ActionDeleted Action = "deleted"
)

// EnumValues makes the schema, and so Validate and routing-key resolution,
// reject any other action.
func (Action) EnumValues() []string {
	return []string{string(ActionCreated), string(ActionUpdated), string(ActionDeleted)}
}

// IngestionFailed reports that ingesting an artifact into the RAG store
// failed; its envelope's correlation_ids names the artifact event. Python:
// ArtifactIngestionFailedPayload.
type IngestionFailed struct {
	ArtifactURI  string  `json:"artifact_uri"`
	ArtifactKind string  `json:"artifact_kind"`
	ErrorMessage string  `json:"error_message"`
	ErrorCode    *string `json:"error_code"`
	RetryCount   int     `json:"retry_count" default:"0"`
	// IsRetryable defaults to true, as in Python: nil is written as true.
	IsRetryable *bool `json:"is_retryable" default:"true"`
}

var _ domains.Enum = Action("")
