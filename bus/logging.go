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

// watermillLevels logs Watermill's chatty Info lines (one per handler
// start) at Debug.
var watermillLevels = map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}

// WatermillLogger adapts a slog logger for Watermill. Watermill's chatty
// Info lines (one per handler start) are logged at Debug.
func WatermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	l = orNop(l)
	return watermillLogger{l: l, next: watermill.NewSlogLoggerWithLevelMapping(l, watermillLevels)}
}

// watermillLogger is Watermill's slog adapter behind a check of the level:
// the router logs a Trace line per message, whose fields the adapter would
// turn into slog arguments (allocating) before slog drops the line.
type watermillLogger struct {
	l    *slog.Logger // the logger next writes to, for Enabled
	next watermill.LoggerAdapter
}

func (w watermillLogger) enabled(level slog.Level) bool {
	if mapped, ok := watermillLevels[level]; ok {
		level = mapped
	}
	// The adapter logs with context.Background() too.
	return w.l.Enabled(context.Background(), level)
}

func (w watermillLogger) Error(msg string, err error, fields watermill.LogFields) {
	if w.enabled(slog.LevelError) {
		w.next.Error(msg, err, fields)
	}
}

func (w watermillLogger) Info(msg string, fields watermill.LogFields) {
	if w.enabled(slog.LevelInfo) {
		w.next.Info(msg, fields)
	}
}

func (w watermillLogger) Debug(msg string, fields watermill.LogFields) {
	if w.enabled(slog.LevelDebug) {
		w.next.Debug(msg, fields)
	}
}

func (w watermillLogger) Trace(msg string, fields watermill.LogFields) {
	if w.enabled(watermill.LevelTrace) {
		w.next.Trace(msg, fields)
	}
}

// With returns the adapter with fields on every line; its level check asks
// the logger those fields went to, as the adapter's own logging does.
func (w watermillLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	l := w.l.With(args...)
	return watermillLogger{l: l, next: watermill.NewSlogLoggerWithLevelMapping(l, watermillLevels)}
}
