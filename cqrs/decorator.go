package cqrs

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Execution is one command being executed, as a Decorator sees it; Result,
// Published and RolledBack are filled once next returns.
type Execution struct {
	// HandlerName is the name of the command's handler (its routing key).
	HandlerName string
	// Command is the decoded command, a value of the registered type.
	Command any
	// Context describes the command's envelope.
	Context CommandContext
	// Message is the message that carried the command.
	Message *message.Message

	// Result is what Execute returned, once it succeeded.
	Result any
	// Published lists the collected events that were published, in order.
	Published []envelope.Envelope
	// RolledBack reports that the command failed and Rollback was called.
	RolledBack bool
}

// HandlerFunc executes one command; nil means it succeeded and its events were published.
type HandlerFunc func(ctx context.Context, ex *Execution) error

// Decorator wraps every command handler of a processor (logging, metrics,
// tracing); see ProcessorConfig.Decorators.
type Decorator func(next HandlerFunc) HandlerFunc

// Outcomes of a command, as its log line names them.
const (
	// OutcomeExecuted: Execute succeeded and its events were published.
	OutcomeExecuted = "executed"
	// OutcomeFailed: a transient failure; the service's retry policy applies.
	OutcomeFailed = "failed"
	// OutcomeRejected: the command failed permanently (envelope.PermanentError, panic).
	OutcomeRejected = "rejected"
)

func logging(logger *slog.Logger) Decorator {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, ex *Execution) error {
			start := time.Now()
			err := next(ctx, ex)
			outcome, level := OutcomeExecuted, slog.LevelInfo
			switch {
			case envelope.IsPermanent(err):
				outcome, level = OutcomeRejected, slog.LevelError
			case err != nil:
				outcome, level = OutcomeFailed, slog.LevelWarn
			}
			published := make([]string, len(ex.Published))
			for i, e := range ex.Published {
				published[i] = e.EventType + "/" + e.EventID.String()
			}
			attrs := []slog.Attr{
				slog.String("id", ex.Context.EventID.String()),
				slog.String("type", ex.Context.EventType),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("outcome", outcome),
				slog.Any("published", published),
			}
			if err != nil {
				attrs = append(attrs, slog.Bool("rolled_back", ex.RolledBack), slog.String("error", err.Error()))
			}
			logger.LogAttrs(ctx, level, "command", attrs...)
			return err
		}
	}
}

// counters are the processor's metrics; Stats reads them.
type counters struct {
	executed, failed, published, facts, unknown, rejected atomic.Uint64
}

func (c *counters) metrics(next HandlerFunc) HandlerFunc {
	return func(ctx context.Context, ex *Execution) error {
		err := next(ctx, ex)
		c.published.Add(uint64(len(ex.Published)))
		if err != nil {
			c.failed.Add(1)
		} else {
			c.executed.Add(1)
		}
		return err
	}
}

// Stats counts what a processor did. Every message counts once, under one
// of Executed, Failed, Facts, Unknown or Rejected.
type Stats struct {
	// Executed commands succeeded and their events were published.
	Executed uint64
	// Failed commands returned an error (or panicked), or their events
	// could not all be published; each failed attempt counts.
	Failed uint64
	// Published counts the events commands collected and published.
	Published uint64
	// Facts are events of a registered fact type: acked and logged, not executed.
	Facts uint64
	// Unknown are events of an unregistered type: acked and logged, not executed.
	Unknown uint64
	// Rejected messages never reached Execute: malformed, invalid for their
	// type, or a registered command type that no handler executes. Their
	// error is permanent.
	Rejected uint64
}

func (c *counters) stats() Stats {
	return Stats{
		Executed: c.executed.Load(), Failed: c.failed.Load(), Published: c.published.Load(),
		Facts: c.facts.Load(), Unknown: c.unknown.Load(), Rejected: c.rejected.Load(),
	}
}
