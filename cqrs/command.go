package cqrs

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Command is a command payload with its behaviour, Python's Invokable[R]:
// Execute does the work, adds the events it caused to events, and returns
// its result. An error fails the command (see the package doc). A command
// type is a payload registered as a domains.Command, or a struct embedding
// one that adds the behaviour and its dependencies:
//
//	type AgentThreadPrompt struct {
//		thread.Prompt        // the payload, decoded from the message
//		Agent Agent `json:"-"` // a dependency, copied from the registered prototype
//	}
//
//	func (c AgentThreadPrompt) Execute(ctx context.Context, cc cqrs.CommandContext, events *cqrs.Collector) (*thread.Response, error)
//
// Execute runs concurrently, each message on its own copy of the command.
type Command[R any] interface {
	Execute(ctx context.Context, cc CommandContext, events *Collector) (R, error)
}

// Rollbacker is optional: a command with side effects beyond its events
// undoes them in Rollback (Python's Invokable.rollback), called once after
// Execute failed or panicked or its events could not all be published, so
// that the redelivered command starts clean.
type Rollbacker interface {
	Rollback(ctx context.Context, cc CommandContext) error
}

// CommandContext is what a command knows about its message (Python's CommandContext).
type CommandContext struct {
	// EventID is the command's event id, the correlation id of everything it
	// causes (SideEffectID). Python calls it correlation_id.
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
	// ReplayID is the envelope.MetaReplay header of a replayed command;
	// its collected events get ReplaySideEffectID ids.
	ReplayID string
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

// SideEffectID is the id of the event a command collects at position (0 for
// the first), the one Python's generate_event_id(event_type,
// command_id=str(command_id), position=position) gives, stable across redeliveries.
func SideEffectID(eventType string, commandID uuid.UUID, position int) uuid.UUID {
	return envelope.DeterministicIDOf(eventType, envelope.UUIDField("command_id", commandID), envelope.IntField("position", int64(position)))
}

// ReplaySideEffectID is SideEffectID under replay replayID: new for each
// replay, stable across that replay's redeliveries.
func ReplaySideEffectID(eventType string, commandID uuid.UUID, position int, replayID string) uuid.UUID {
	return envelope.DeterministicIDOf(eventType, envelope.UUIDField("command_id", commandID),
		envelope.IntField("position", int64(position)), envelope.StrField("replay_id", replayID))
}

// sideEffectID also returns, under a replay, the first run's id.
func (cc CommandContext) sideEffectID(eventType string, position int) (id, replayOf uuid.UUID) {
	first := SideEffectID(eventType, cc.EventID, position)
	if cc.ReplayID == "" {
		return first, uuid.Nil
	}
	return ReplaySideEffectID(eventType, cc.EventID, position, cc.ReplayID), first
}
