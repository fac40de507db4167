package bus

import (
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

// WatermillLogger adapts a slog logger for Watermill. Watermill's chatty
// Info lines (one per handler start) are logged at Debug.
func WatermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(orNop(l), map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
}
