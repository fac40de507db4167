// Package thread holds the payloads of the agent/thread domain: a prompt
// sent to an agent (agent.thread.prompt, a command), the agent's answer
// (agent.thread.response) and a failed interaction (agent.thread.error).
//
// Executing agent.thread.prompt publishes one agent.thread.response whose
// correlation_ids is [the prompt's event_id]. That behaviour lives in the
// cqrs package; this package is pure data, and Register only records that
// the prompt is a command whose result is RoutingKeyResponse.
//
// The types mirror event_producers/events/domains/agent/thread.py (wire
// contract, section 6): optional fields are pointers and encode as null,
// tags default to [] on decode and encode.
package thread
