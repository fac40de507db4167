package artifact

import (
	"encoding/json"

	segjson "github.com/segmentio/encoding/json"

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

// MarshalJSON writes absent metadata as {}.
func (p Changed) MarshalJSON() ([]byte, error) {
	type plain Changed
	if p.Metadata == nil {
		p.Metadata = map[string]any{}
	}
	return json.Marshal(plain(p))
}

// UnmarshalJSON reads absent or null metadata as {}.
func (p *Changed) UnmarshalJSON(b []byte) error {
	type plain Changed
	var v plain
	if err := segjson.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Metadata == nil {
		v.Metadata = map[string]any{}
	}
	*p = Changed(v)
	return nil
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
	IsRetryable  bool    `json:"is_retryable" default:"true"`
}

// UnmarshalJSON reads an absent or null is_retryable as true, Python's default.
func (p *IngestionFailed) UnmarshalJSON(b []byte) error {
	type plain IngestionFailed
	v := plain{IsRetryable: true}
	if err := segjson.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = IngestionFailed(v)
	return nil
}

var (
	_ domains.Enum     = Action("")
	_ json.Marshaler   = Changed{}
	_ json.Unmarshaler = (*Changed)(nil)
	_ json.Unmarshaler = (*IngestionFailed)(nil)
)
