package artifact

import "github.com/33god/bloodbank-go/domains"

// Register adds the domain's payload types to r under their routing keys
// (Changed under RoutingKeyTemplate) and their Python class names.
func Register(r *domains.Registry) error {
	return domains.RegisterDomain(r, Domain,
		domains.Spec[Changed]{
			RoutingKey:  RoutingKeyTemplate,
			Aliases:     []string{"Artifact"},
			Description: "An artifact was created, updated or deleted; the key's last word is the action.",
			Example: Changed{
				Action:   ActionCreated,
				Kind:     "transcript",
				URI:      "s3://bloodbank-artifacts/transcripts/01JJQ4ZK8W3M5N7P9R2T4V6X8Z.md",
				Title:    new("Team standup, 29 January"),
				Metadata: map[string]any{"source": "fireflies", "sentences": 212},
			},
		},
		domains.Spec[IngestionFailed]{
			RoutingKey:  RoutingKeyIngestionFailed,
			Aliases:     []string{"ArtifactIngestionFailedPayload"},
			Description: "Ingesting an artifact into the RAG store failed.",
			Example: IngestionFailed{
				ArtifactURI:  "s3://bloodbank-artifacts/transcripts/01JJQ4ZK8W3M5N7P9R2T4V6X8Z.md",
				ArtifactKind: "transcript",
				ErrorMessage: "embedding service unavailable",
				ErrorCode:    new("embedding_unavailable"),
				RetryCount:   2,
				IsRetryable:  new(true),
			},
		},
	)
}
