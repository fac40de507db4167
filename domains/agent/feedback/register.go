package feedback

import "github.com/33god/bloodbank-go/domains"

// Register adds the domain's payload types to r, both as facts, each under
// its routing key and its Python class name.
func Register(r *domains.Registry) error {
	return domains.RegisterDomain(r, Domain,
		domains.Spec[Requested]{
			RoutingKey:  RoutingKeyRequested,
			Kind:        domains.Fact,
			Aliases:     []string{"AgentFeedbackRequested"},
			Description: "Feedback was requested from a specific agent; the feedback router handles it.",
			Example: Requested{
				AgentID:      "agent-code-reviewer",
				Message:      "Is the retry middleware safe to ship as is?",
				LettaAgentID: new("agent-1f2e3d4c"),
				Context:      map[string]any{"pr": 42, "repo": "33god/bloodbank-go"},
				Tags:         []string{"review"},
			},
		},
		domains.Spec[Response]{
			RoutingKey:  RoutingKeyResponse,
			Kind:        domains.Fact,
			Aliases:     []string{"AgentFeedbackResponse"},
			Description: "An agent's feedback, or the error that prevented it.",
			Example: Response{
				AgentID:      "agent-code-reviewer",
				LettaAgentID: new("agent-1f2e3d4c"),
				Response:     "Ship it once the poison-queue test covers the last attempt.",
				Status:       StatusOK,
				Metadata:     map[string]any{"latency_ms": 1840},
			},
		},
	)
}
