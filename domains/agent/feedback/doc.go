// Package feedback holds the payloads of the agent/feedback domain: a
// system asks a specific agent for feedback mid-session
// (agent.feedback.requested) and the answer comes back
// (agent.feedback.response).
//
// Both are facts, never commands, even though a request looks like one: in
// the Python system a standalone agent-feedback-router service consumes the
// request and invokes the agent, so the command processor must not execute
// it. The types mirror event_producers/events/domains/agent/feedback.py
// (wire contract, section 6).
package feedback
