package bus

import (
	"context"
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
		return slog.New(tint.NewHandler(w, &tint.Options{Level: lvl, TimeFormat: time.TimeOnly, NoColor: !tty})), nil
	case format == "json" || format == "auto":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})), nil
	}
	return nil, fmt.Errorf("invalid log format %q: want auto, text or json", format)
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
