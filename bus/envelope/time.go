package envelope

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// TimestampLayout is how Bloodbank writes timestamps: RFC 3339 in UTC with
// exactly six fractional digits, the form Python's datetime.isoformat and
// Pydantic emit, so every reader on the bus parses what Go writes.
const TimestampLayout = "2006-01-02T15:04:05.000000Z"

// ParseTimestamp reads the three timestamp forms seen on the bus
// (wire-contract section 3): "...Z", "...+00:00" (any offset), and a naive
// "2026-01-29T10:00:00.123456" with no offset, which means UTC. Zero to nine
// fractional digits are accepted, and a space may stand in for the "T" as
// Python's str(datetime) writes it. The result is in UTC.
func ParseTimestamp(in string) (time.Time, error) {
	s := in
	if len(s) >= 11 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	// With an offset, naive (no zone designator), a date alone (Python's date.isoformat).
	for _, layout := range [...]string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid timestamp %q: want ISO-8601 such as 2026-01-29T10:00:00.123456Z", truncate(in, 64))
}

// FormatTimestamp writes t in TimestampLayout.
func FormatTimestamp(t time.Time) string { return t.UTC().Format(TimestampLayout) }

// Time is a time.Time that reads every timestamp form of ParseTimestamp and
// writes TimestampLayout, for the date-time fields of payload types.
type Time struct{ time.Time }

// NewTime returns t truncated to microseconds (the precision Python keeps),
// so that a value survives a round trip through the wire unchanged.
func NewTime(t time.Time) Time { return Time{t.UTC().Truncate(time.Microsecond)} }

// Now is NewTime(time.Now()).
func Now() Time { return NewTime(time.Now()) }

// MarshalJSON writes the timestamp in TimestampLayout.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimestampLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimestampLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts any of the timestamp forms of ParseTimestamp.
// JSON null leaves the value unchanged, as encoding/json does for other types.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("invalid timestamp %s: want a JSON string", truncate(string(b), 64))
	}
	parsed, err := ParseTimestamp(string(b[1 : len(b)-1]))
	if err != nil {
		return err
	}
	t.Time = parsed
	return nil
}

// String is the timestamp in TimestampLayout.
func (t Time) String() string { return FormatTimestamp(t.Time) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
