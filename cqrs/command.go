package cqrs

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Command is a command payload with its behaviour, Python's Invokable[R]:
// Execute does the work, adds the events it caused to events, in order, and
// returns its result R. Returning an error fails the command: nothing it
// collected is published, Rollback (if the type has one) runs, and the
// message is not acked (see Processor for the policy).
//
// A command type is either a payload type registered in the domains registry
// as a domains.Command, or, since domain packages are pure data, a struct that
// embeds one and adds the behaviour (and any dependencies, in fields the JSON
// payload does not touch):
//
//	type AgentThreadPrompt struct {
//		thread.Prompt        // the payload, decoded from the message
//		Agent Agent `json:"-"` // a dependency, copied from the registered prototype
//	}
//
//	func (c AgentThreadPrompt) Execute(ctx context.Context, cc cqrs.CommandContext, events *cqrs.Collector) (*thread.Response, error)
//
// Execute may run for many messages at once, each on its own copy of the
// command: it must not modify shared state without synchronisation.
type Command[R any] interface {
	Execute(ctx context.Context, cc CommandContext, events *Collector) (R, error)
}

// Rollbacker is implemented by a command that can undo what a failed
// execution did, Python's Invokable.rollback. The processor calls it once
// after Execute failed, panicked, or succeeded but its events could not all
// be published, so that the redelivered command starts from a clean state.
// It is optional: a command without side effects outside its events (they
// are not published when it fails) needs none.
type Rollbacker interface {
	Rollback(ctx context.Context, cc CommandContext) error
}

// CommandContext is what a command knows about the message that carried it,
// Python's CommandContext.
type CommandContext struct {
	// EventID is the command's event id. It is the correlation id of
	// everything the command causes: each collected event gets
	// correlation_ids = [EventID], and a deterministic id derived from it
	// (SideEffectID). Python calls it correlation_id.
	EventID uuid.UUID
	// EventType is the command's routing key, e.g. "agent.thread.prompt".
	EventType string
	// SourceApp is the source.app of the command's envelope; empty when null.
	SourceApp string
	// Source is the whole source of the command's envelope.
	Source envelope.Source
	// AgentContext is the command's agent_context, nil when null. Collected
	// events inherit it unless they set their own.
	AgentContext *envelope.AgentContext
	// Timestamp is when the command was issued (its envelope's timestamp).
	Timestamp time.Time
}

// NewCommandContext is the context of the command an envelope carries.
func NewCommandContext(env envelope.Envelope) CommandContext {
	return CommandContext{
		EventID:      env.EventID,
		EventType:    env.EventType,
		SourceApp:    env.Source.App,
		Source:       env.Source,
		AgentContext: env.AgentContext,
		Timestamp:    env.Timestamp,
	}
}

// SideEffectID is the event id of the event a command collects at position
// (0 for the first): DeterministicIDOf(eventType, command_id, position), the
// id a Python service gets from
//
//	generate_event_id(event_type, command_id=str(command_id), position=position)
//
// A redelivered command therefore publishes its events under the same ids
// again, and consumers that deduplicate on event_id drop the repeats.
func SideEffectID(eventType string, commandID uuid.UUID, position int) uuid.UUID {
	return envelope.DeterministicIDOf(eventType, envelope.UUIDField("command_id", commandID), envelope.IntField("position", int64(position)))
}
