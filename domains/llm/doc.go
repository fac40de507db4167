// Package llm holds the payloads of the llm domain: a prompt sent to a
// language model (llm.prompt, a command), its response (llm.response) and a
// failed call (llm.error). Their fields are those of the agent/thread
// payloads (wire contract, section 6), so each type is defined from its
// thread twin (type Prompt thread.Prompt): the fields live in one place,
// while the types stay distinct, so that a Go value names one routing key
// and a handler for one domain never receives the other's events; a
// conversion (thread.Prompt(p)) moves a value between the two domains.
//
// The types mirror event_producers/events/domains/llm.py. Python's LLMPrompt
// is a plain model, not an Invokable; the Go registry records llm.prompt as
// a command whose result is llm.response, as agent.thread.prompt is.
package llm
