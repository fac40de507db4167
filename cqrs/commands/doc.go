// Package commands holds the behaviour of the built-in commands, one use
// case, prompting, in prompt.go: AgentThreadPrompt (agent.thread.prompt →
// agent.thread.response or agent.thread.error) and LLMPrompt (llm.prompt →
// llm.response or llm.error). Both embed their pure-data payload from the
// domain package and run the same execution, which asks an Agent and
// publishes the outcome as its domain's type; EchoAgent is the reference
// agent of the wire contract, a deterministic echo that calls no model.
//
// The outcome of a prompt follows the Agent's error:
//
//	no error                  → the response event; the prompt is acked
//	final error (the default) → the error event (is_retryable false); the prompt is acked
//	transient (IsTransient)   → nothing published; the command fails and the
//	                            prompt is redelivered under the service's retry policy
//
// Register adds them all to a cqrs.Processor.
package commands
