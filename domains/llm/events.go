package llm

import "github.com/33god/bloodbank-go/domains/agent/thread"

// Domain is the domain name, as Python's registry lists it.
const Domain = "llm"

// Routing keys of the domain, part of the wire contract.
const (
	RoutingKeyPrompt   = "llm.prompt"
	RoutingKeyResponse = "llm.response"
	RoutingKeyError    = "llm.error"
)

// Prompt is a command: send a prompt to a language model. Python: LLMPrompt.
type Prompt thread.Prompt

// Response is a model's answer to a prompt; its envelope's correlation_ids
// names the prompt. Python: LLMResponse.
type Response thread.Response

// ErrorPayload reports a failed model call (rate limit, error, timeout).
// Named after Python's LLMErrorPayload rather than Error, which would read
// as a Go error.
type ErrorPayload thread.ErrorPayload
