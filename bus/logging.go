package bus

import "log/slog"

// orNop returns l, or a logger that discards everything: library code logs
// only when its caller gave it a logger.
func orNop(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
