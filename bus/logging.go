package bus

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// orNop returns l, or a logger that discards everything: library code logs
// only when its caller gave it a logger.
func orNop(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// WatermillLogger adapts a slog logger for Watermill, so that the router's
// own logs go where the service's go. Watermill's chatty Info lines (one per
// handler start) are logged at Debug, its Trace lines below Debug.
func WatermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	l = orNop(l)
	return levelGate{l: l, next: watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{
		watermill.LevelTrace: traceLevel,
		slog.LevelInfo:       slog.LevelDebug,
	})}
}

const traceLevel = slog.LevelDebug - 4

// levelGate asks the logger whether a level is on before Watermill's
// adapter turns the fields into attributes: the router logs two Trace lines
// per message, and converting their fields cost a map walk and an
// allocation each even with tracing off.
type levelGate struct {
	l    *slog.Logger
	next watermill.LoggerAdapter
}

func (g levelGate) Error(msg string, err error, fields watermill.LogFields) {
	g.next.Error(msg, err, fields)
}

func (g levelGate) Info(msg string, fields watermill.LogFields) {
	if g.l.Enabled(context.Background(), slog.LevelDebug) {
		g.next.Info(msg, fields)
	}
}

func (g levelGate) Debug(msg string, fields watermill.LogFields) {
	if g.l.Enabled(context.Background(), slog.LevelDebug) {
		g.next.Debug(msg, fields)
	}
}

func (g levelGate) Trace(msg string, fields watermill.LogFields) {
	if g.l.Enabled(context.Background(), traceLevel) {
		g.next.Trace(msg, fields)
	}
}

// With keeps the gate: attributes do not change which levels are on.
func (g levelGate) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return levelGate{l: g.l, next: g.next.With(fields)}
}
