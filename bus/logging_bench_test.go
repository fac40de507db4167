package bus_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/33god/bloodbank-go/bus"
)

// BenchmarkWatermillLogger_traceDisabled is the line Watermill's router
// logs per message, at Trace, into a logger at Info: it must cost next to
// nothing.
func BenchmarkWatermillLogger_traceDisabled(b *testing.B) {
	l := bus.WatermillLogger(slog.New(slog.NewTextHandler(io.Discard, nil))).
		With(watermill.LogFields{"handler_name": "h", "topic": "t"})
	fields := watermill.LogFields{"message_uuid": "u", "subscriber_name": "s"}
	b.ReportAllocs()
	for b.Loop() {
		l.Trace("Received message", fields)
	}
}
