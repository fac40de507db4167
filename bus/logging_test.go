package bus_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/33god/bloodbank-go/bus"
)

func TestWatermillLogger_levels(t *testing.T) {
	for _, tt := range []struct {
		level        slog.Level
		want, absent []string
	}{
		{slog.LevelInfo, []string{"level=ERROR msg=boom"}, []string{"started", "detail", "per message"}},
		{slog.LevelDebug, []string{"level=ERROR msg=boom", "level=DEBUG msg=started", "level=DEBUG msg=detail handler=h"}, []string{"per message"}},
		{slog.LevelDebug - 4, []string{"level=DEBUG-4 msg=\"per message\" handler=h message_uuid=u"}, nil},
	} {
		var buf bytes.Buffer
		l := bus.WatermillLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level})))
		l.Error("boom", errors.New("e"), nil)
		l.Info("started", nil)
		h := l.With(watermill.LogFields{"handler": "h"})
		h.Debug("detail", nil)
		h.Trace("per message", watermill.LogFields{"message_uuid": "u"})
		out := buf.String()
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("at %v: output lacks %q:\n%s", tt.level, w, out)
			}
		}
		for _, n := range tt.absent {
			if strings.Contains(out, n) {
				t.Errorf("at %v: output has %q, which is below the level:\n%s", tt.level, n, out)
			}
		}
	}
}
