package llm

import "github.com/33god/bloodbank-go/domains"

// Register adds llm.prompt and the two events that may answer it to r;
// Python's class names are their aliases. llm.prompt is a fact, as in
// Python, where no command executes it: a service that answers it records
// it as a command with Registry.ExecuteAsCommand.
func Register(r *domains.Registry) error {
	return domains.RegisterDomain(r, Domain,
		domains.Spec[Prompt]{
			RoutingKey:  RoutingKeyPrompt,
			Aliases:     []string{"LLMPrompt"},
			Description: "A prompt for a language model, answered by llm.response from whichever service runs the model.",
			Example: Prompt{
				Provider:   "openai",
				Model:      new("gpt-4.1"),
				Prompt:     "Summarise the last three standups in five bullet points.",
				Project:    new("bloodbank"),
				WorkingDir: new("/home/dev/bloodbank"),
				Tags:       []string{"summary", "meetings"},
			},
		},
		domains.Spec[Response]{
			RoutingKey:  RoutingKeyResponse,
			Aliases:     []string{"LLMResponse"},
			Description: "A language model answered a prompt; correlation_ids names the prompt.",
			Example: Response{
				Provider:   "openai",
				Response:   "- Go consumer ships Friday\n- CI flake tracked\n- Retry middleware paired on",
				Model:      new("gpt-4.1"),
				TokensUsed: new(512),
				DurationMS: new(2310),
			},
		},
		domains.Spec[ErrorPayload]{
			RoutingKey:  RoutingKeyError,
			Aliases:     []string{"LLMErrorPayload"},
			Description: "A language model call failed (rate limit, error, timeout).",
			Example: ErrorPayload{
				Provider:     "openai",
				Model:        new("gpt-4.1"),
				ErrorMessage: "context length exceeded: 131072 tokens",
				ErrorCode:    new("context_length_exceeded"),
				IsRetryable:  false,
			},
		},
	)
}
