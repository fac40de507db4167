package main

import (
	"context"

	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/middleware"
)

// traceCommands is the cqrs decorator that runs every command inside an
// "execute <command>" span, a child of the delivery's "handle" span; what
// the command publishes with its context continues the trace.
func traceCommands(tr *middleware.Tracing) cqrs.Decorator {
	return func(next cqrs.HandlerFunc) cqrs.HandlerFunc {
		return func(ctx context.Context, ex *cqrs.Execution) error {
			return tr.Execute(ctx, middleware.ExecuteParams{Command: ex.Context.EventType, Message: ex.Message},
				func(ctx context.Context) error { return next(ctx, ex) })
		}
	}
}
