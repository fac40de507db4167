package thread

import "github.com/33god/bloodbank-go/domains"

// Register adds the domain's payload types to r, each under its routing key
// and its Python class name. The prompt is registered as a command whose
// result is RoutingKeyResponse.
func Register(r *domains.Registry) error {
	return domains.RegisterDomain(r, Domain,
		domains.Spec[Prompt]{
			RoutingKey:  RoutingKeyPrompt,
			Kind:        domains.Command,
			Result:      RoutingKeyResponse,
			Aliases:     []string{"AgentThreadPrompt"},
			Description: "Command: send a prompt to an agent; answered by agent.thread.response.",
			Example: Prompt{
				Provider: "anthropic",
				Model:    new("claude-sonnet-4"),
				Prompt:   "Analyze this codebase",
				Project:  new("bloodbank"),
				Tags:     []string{"analysis"},
			},
		},
		domains.Spec[Response]{
			RoutingKey:  RoutingKeyResponse,
			Aliases:     []string{"AgentThreadResponse"},
			Description: "An agent answered a prompt; correlation_ids names the prompt.",
			Example: Response{
				Provider:   "anthropic",
				Response:   "Echoing your prompt: Analyze this codebase",
				Model:      new("claude-sonnet-4"),
				TokensUsed: new(42),
				DurationMS: new(100),
			},
		},
		domains.Spec[ErrorPayload]{
			RoutingKey:  RoutingKeyError,
			Aliases:     []string{"AgentThreadErrorPayload"},
			Description: "An agent interaction failed (rate limit, error, timeout).",
			Example: ErrorPayload{
				Provider:     "anthropic",
				Model:        new("claude-sonnet-4"),
				ErrorMessage: "rate limit exceeded: retry after 20s",
				ErrorCode:    new("rate_limit_error"),
				IsRetryable:  true,
				RetryCount:   1,
			},
		},
	)
}
