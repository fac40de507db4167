package bus

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/lmittmann/tint"
	"golang.org/x/term"
)

// orNop returns l, or a logger that discards everything: library code logs
// only when its caller gave it a logger.
func orNop(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// ParseLevel reads a log level: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("want debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// NewLogger builds the logger a binary uses: colored, readable lines from
// lmittmann/tint when format is "text", or "auto" and w is a terminal;
// JSON lines otherwise, for log collectors.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("invalid log level: %w", err)
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	switch {
	case format == "text" || (format == "auto" && tty):
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: lvl, TimeFormat: time.TimeOnly, NoColor: !tty})), nil
	case format == "json" || format == "auto":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})), nil
	}
	return nil, fmt.Errorf("invalid log format %q: want auto, text or json", format)
}

// WatermillLogger adapts a slog logger for Watermill, so that the router's
// own logs go where the service's go. Watermill's chatty Info lines (one per
// handler start) are logged at Debug, its Trace lines below Debug
// (watermill.LevelTrace).
func WatermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(orNop(l), map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
}
