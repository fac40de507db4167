package thread

// Domain is the domain name, as Python's registry lists it.
const Domain = "agent/thread"

// Routing keys of the domain, part of the wire contract.
const (
	RoutingKeyPrompt   = "agent.thread.prompt"
	RoutingKeyResponse = "agent.thread.response"
	RoutingKeyError    = "agent.thread.error"
)

// Prompt is a command: send a prompt to an agent. Python: AgentThreadPrompt.
type Prompt struct {
	Provider   string   `json:"provider" jsonschema_description:"e.g. anthropic, openai, google."`
	Model      *string  `json:"model" jsonschema_description:"e.g. claude-sonnet-4."`
	Prompt     string   `json:"prompt"`
	Project    *string  `json:"project" jsonschema_description:"Git project name."`
	WorkingDir *string  `json:"working_dir"`
	Domain     *string  `json:"domain"`
	Tags       []string `json:"tags" default:"[]"`
}

// Response is an agent's answer to a prompt; its envelope's correlation_ids
// names the prompt. Python: AgentThreadResponse.
type Response struct {
	Provider string `json:"provider"`
	// Deprecated: PromptID duplicates the prompt's event id, which
	// correlation_ids already carries. Kept because Python still writes it.
	PromptID   *string `json:"prompt_id" jsonschema_description:"Deprecated: the prompt's event id; use correlation_ids."`
	Response   string  `json:"response"`
	Model      *string `json:"model"`
	TokensUsed *int    `json:"tokens_used"`
	DurationMS *int    `json:"duration_ms"`
}

// ErrorPayload reports a failed agent interaction (rate limit, error,
// timeout). Named after Python's AgentThreadErrorPayload rather than Error,
// which would read as a Go error.
type ErrorPayload struct {
	Provider     string  `json:"provider"`
	Model        *string `json:"model"`
	ErrorMessage string  `json:"error_message"`
	ErrorCode    *string `json:"error_code"`
	IsRetryable  bool    `json:"is_retryable" default:"false"`
	RetryCount   int     `json:"retry_count" default:"0"`
}
