package envelope_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/33god/bloodbank-go/bus/envelope"
)

func TestParseTimestamp_forms(t *testing.T) {
	at := func(h, m, s, ns int) time.Time { return time.Date(2026, 1, 29, h, m, s, ns, time.UTC) }
	tests := []struct {
		name string
		in   string
		want time.Time
	}{
		{"Z", "2026-01-29T10:00:00.123456Z", at(10, 0, 0, 123456000)},
		{"+00:00", "2026-01-29T10:00:00.123456+00:00", at(10, 0, 0, 123456000)},
		{"+02:00 converted to UTC", "2026-01-29T12:00:00.123456+02:00", at(10, 0, 0, 123456000)},
		{"-05:00 converted to UTC", "2026-01-29T05:00:00-05:00", at(10, 0, 0, 0)},
		{"+05:30 converted to UTC", "2026-01-29T15:30:00+05:30", at(10, 0, 0, 0)},
		{"offset crossing the day", "2026-01-30T01:00:00.000001+02:00", at(23, 0, 0, 1000)},
		{"naive means UTC", "2026-01-29T10:00:00.123456", at(10, 0, 0, 123456000)},
		{"naive without fraction", "2026-01-29T10:00:00", at(10, 0, 0, 0)},
		{"space instead of T, naive", "2026-01-29 10:00:00.123456", at(10, 0, 0, 123456000)},
		{"space instead of T, offset", "2026-01-29 12:00:00.123456+02:00", at(10, 0, 0, 123456000)},
		{"space instead of T, Z", "2026-01-29 10:00:00Z", at(10, 0, 0, 0)},
		{"0 fractional digits Z", "2026-01-29T10:00:00Z", at(10, 0, 0, 0)},
		{"1 fractional digit Z", "2026-01-29T10:00:00.1Z", at(10, 0, 0, 100000000)},
		{"2 fractional digits Z", "2026-01-29T10:00:00.12Z", at(10, 0, 0, 120000000)},
		{"3 fractional digits Z", "2026-01-29T10:00:00.123Z", at(10, 0, 0, 123000000)},
		{"4 fractional digits Z", "2026-01-29T10:00:00.1234Z", at(10, 0, 0, 123400000)},
		{"5 fractional digits Z", "2026-01-29T10:00:00.12345Z", at(10, 0, 0, 123450000)},
		{"6 fractional digits Z", "2026-01-29T10:00:00.123456Z", at(10, 0, 0, 123456000)},
		{"7 fractional digits Z", "2026-01-29T10:00:00.1234567Z", at(10, 0, 0, 123456700)},
		{"8 fractional digits Z", "2026-01-29T10:00:00.12345678Z", at(10, 0, 0, 123456780)},
		{"9 fractional digits Z", "2026-01-29T10:00:00.123456789Z", at(10, 0, 0, 123456789)},
		{"1 fractional digit naive", "2026-01-29T10:00:00.1", at(10, 0, 0, 100000000)},
		{"3 fractional digits naive", "2026-01-29T10:00:00.123", at(10, 0, 0, 123000000)},
		{"9 fractional digits naive", "2026-01-29T10:00:00.123456789", at(10, 0, 0, 123456789)},
		{"1 fractional digit offset", "2026-01-29T10:00:00.1+00:00", at(10, 0, 0, 100000000)},
		{"9 fractional digits offset", "2026-01-29T12:00:00.123456789+02:00", at(10, 0, 0, 123456789)},
		{"trailing zeros", "2026-01-29T10:00:00.000000Z", at(10, 0, 0, 0)},
		{"end of day", "2026-01-29T23:59:59.999999Z", at(23, 59, 59, 999999000)},
		{"leap day", "2028-02-29T00:00:00Z", time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"date alone means midnight UTC", "2026-01-29", at(0, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := envelope.ParseTimestamp(tt.in)
			if err != nil {
				t.Fatalf("ParseTimestamp(%q) error = %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("ParseTimestamp(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if got.Location() != time.UTC {
				t.Errorf("ParseTimestamp(%q) location = %s, want UTC", tt.in, got.Location())
			}
		})
	}
}

func TestParseTimestamp_invalid(t *testing.T) {
	tests := []string{
		"",
		"yesterday",
		"2026",
		"2026-01",
		"2026/01/29 10:00:00",
		"29-01-2026T10:00:00Z",
		"2026-13-01T10:00:00Z",
		"2026-02-30T10:00:00Z",
		"2026-01-29T25:00:00Z",
		"2026-01-29T10:61:00Z",
		"2026-01-29T10:00:00.Z",
		"2026-01-29T10:00:00Zjunk",
		"2026-01-29T10:00:00+25:00",
		"2026-01-29X10:00:00Z",
		"1769680800",
		" 2026-01-29T10:00:00Z",
		strings.Repeat("9", 500),
	}
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			got, err := envelope.ParseTimestamp(in)
			if err == nil {
				t.Fatalf("ParseTimestamp(%q) = %s, want an error", in, got)
			}
			if !got.IsZero() {
				t.Errorf("ParseTimestamp(%q) on error = %s, want the zero time", in, got)
			}
			if !strings.Contains(err.Error(), "ISO-8601") {
				t.Errorf("error = %q, want it to say what form is expected", err)
			}
			// The input is quoted exactly as the caller wrote it.
			if len(in) <= 64 && !strings.Contains(err.Error(), strconv.Quote(in)) {
				t.Errorf("error = %q, want it to quote the input", err)
			}
			if len(err.Error()) > 200 {
				t.Errorf("error is %d bytes long, want the input truncated", len(err.Error()))
			}
		})
	}
}

func TestFormatTimestamp(t *testing.T) {
	plus2 := time.FixedZone("", 2*3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC), "2026-01-29T10:00:00.123456Z"},
		{time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC), "2026-01-29T10:00:00.000000Z"},
		{time.Date(2026, 1, 29, 10, 0, 0, 999999999, time.UTC), "2026-01-29T10:00:00.999999Z"},
		{time.Date(2026, 1, 29, 12, 0, 0, 1000, plus2), "2026-01-29T10:00:00.000001Z"},
		{time.Time{}, "0001-01-01T00:00:00.000000Z"},
	}
	for _, tt := range tests {
		if got := envelope.FormatTimestamp(tt.in); got != tt.want {
			t.Errorf("FormatTimestamp(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// What Go writes, ParseTimestamp reads back.
	in := time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC)
	if got, err := envelope.ParseTimestamp(envelope.FormatTimestamp(in)); err != nil || !got.Equal(in) {
		t.Errorf("ParseTimestamp(FormatTimestamp(%s)) = %s, %v", in, got, err)
	}
	if envelope.TimestampLayout != "2006-01-02T15:04:05.000000Z" {
		t.Errorf("TimestampLayout = %q", envelope.TimestampLayout)
	}
}

func TestTime_MarshalJSON(t *testing.T) {
	plus2 := time.FixedZone("", 2*3600)
	tests := []struct {
		name string
		in   envelope.Time
		want string
	}{
		{"UTC microseconds", envelope.Time{Time: time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC)}, `"2026-01-29T10:00:00.123456Z"`},
		{"offset converted", envelope.Time{Time: time.Date(2026, 1, 29, 12, 0, 0, 0, plus2)}, `"2026-01-29T10:00:00.000000Z"`},
		{"nanoseconds truncated", envelope.Time{Time: time.Date(2026, 1, 29, 10, 0, 0, 123456789, time.UTC)}, `"2026-01-29T10:00:00.123456Z"`},
		{"zero", envelope.Time{}, `"0001-01-01T00:00:00.000000Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("json.Marshal = %s, want %s", got, tt.want)
			}
			// As a struct field and through a pointer.
			type payload struct {
				At  envelope.Time  `json:"at"`
				Ptr *envelope.Time `json:"ptr"`
			}
			v := tt.in
			got, err = json.Marshal(payload{At: tt.in, Ptr: &v})
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"at":` + tt.want + `,"ptr":` + tt.want + `}`; string(got) != want {
				t.Errorf("json.Marshal(struct) = %s, want %s", got, want)
			}
			if s := tt.in.String(); `"`+s+`"` != tt.want {
				t.Errorf("String() = %q, want %s", s, tt.want)
			}
		})
	}
}

func TestTime_UnmarshalJSON(t *testing.T) {
	at := func(h, m, s, ns int) time.Time { return time.Date(2026, 1, 29, h, m, s, ns, time.UTC) }
	tests := []struct {
		in   string
		want time.Time
	}{
		{`"2026-01-29T10:00:00.123456Z"`, at(10, 0, 0, 123456000)},
		{`"2026-01-29T10:00:00.123456+00:00"`, at(10, 0, 0, 123456000)},
		{`"2026-01-29T12:00:00.123456+02:00"`, at(10, 0, 0, 123456000)},
		{`"2026-01-29T10:00:00.123456"`, at(10, 0, 0, 123456000)},
		{`"2026-01-29 10:00:00"`, at(10, 0, 0, 0)},
		{`"2026-01-29T10:00:00Z"`, at(10, 0, 0, 0)},
		{`"2026-01-29T10:00:00.123456789Z"`, at(10, 0, 0, 123456789)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got envelope.Time
			if err := json.Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatalf("json.Unmarshal(%s) error = %v", tt.in, err)
			}
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("json.Unmarshal(%s) = %s, want %s", tt.in, got.Time, tt.want)
			}
			var p struct {
				At  envelope.Time  `json:"at"`
				Ptr *envelope.Time `json:"ptr"`
			}
			if err := json.Unmarshal([]byte(`{"at":`+tt.in+`,"ptr":`+tt.in+`}`), &p); err != nil {
				t.Fatal(err)
			}
			if !p.At.Equal(tt.want) || p.Ptr == nil || !p.Ptr.Equal(tt.want) {
				t.Errorf("in a struct: at = %s, ptr = %v, want %s", p.At.Time, p.Ptr, tt.want)
			}
		})
	}
}

func TestTime_UnmarshalJSON_nullLeavesValue(t *testing.T) {
	orig := envelope.NewTime(time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC))
	got := orig
	if err := json.Unmarshal([]byte(`null`), &got); err != nil {
		t.Fatalf("json.Unmarshal(null) error = %v", err)
	}
	if got != orig {
		t.Errorf("after null = %s, want unchanged %s", got, orig)
	}
	if err := got.UnmarshalJSON([]byte(`null`)); err != nil || got != orig {
		t.Errorf("UnmarshalJSON(null) = %s, %v; want unchanged %s, nil", got, err, orig)
	}
	var zero envelope.Time
	if err := json.Unmarshal([]byte(`null`), &zero); err != nil || !zero.IsZero() {
		t.Errorf("null into the zero Time = %s, %v; want zero, nil", zero, err)
	}
	p := struct {
		At  envelope.Time  `json:"at"`
		Ptr *envelope.Time `json:"ptr"`
	}{At: orig, Ptr: &orig}
	if err := json.Unmarshal([]byte(`{"at":null,"ptr":null}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.At != orig || p.Ptr != nil {
		t.Errorf("struct after nulls: at = %s, ptr = %v; want at unchanged and ptr nil", p.At, p.Ptr)
	}
}

func TestTime_UnmarshalJSON_invalid(t *testing.T) {
	orig := envelope.NewTime(time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC))
	tests := []struct {
		name string
		in   string
	}{
		{"number", `1769680800`},
		{"boolean", `true`},
		{"object", `{"t":"2026-01-29T10:00:00Z"}`},
		{"array", `["2026-01-29T10:00:00Z"]`},
		{"empty string", `""`},
		{"not a time", `"yesterday"`},
		{"string null", `"null"`},
		{"out of range", `"2026-01-29T24:00:00Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := orig
			err := json.Unmarshal([]byte(tt.in), &got)
			if err == nil {
				t.Fatalf("json.Unmarshal(%s) = %s, want an error", tt.in, got)
			}
			if got != orig {
				t.Errorf("after a failed unmarshal the value = %s, want it unchanged (%s)", got, orig)
			}
		})
	}
	// Raw inputs encoding/json would never pass, called directly.
	for _, raw := range []string{``, `"`, `x`, `'2026-01-29'`, `"2026-01-29T10:00:00Z`, `2026-01-29T10:00:00Z"`} {
		got := orig
		if err := got.UnmarshalJSON([]byte(raw)); err == nil {
			t.Errorf("UnmarshalJSON(%q) = %s, want an error", raw, got)
		}
		if got != orig {
			t.Errorf("UnmarshalJSON(%q) changed the value to %s", raw, got)
		}
	}
}

func TestTime_roundTrip(t *testing.T) {
	now := envelope.Now()
	if now.Nanosecond()%1000 != 0 || now.Location() != time.UTC {
		t.Errorf("Now() = %s, want UTC truncated to microseconds", now.Time)
	}
	in := time.Date(2026, 1, 29, 12, 0, 0, 123456789, time.FixedZone("", 2*3600))
	nt := envelope.NewTime(in)
	if want := time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC); nt.Time != want {
		t.Errorf("NewTime(%s) = %s, want %s", in, nt.Time, want)
	}
	for _, v := range []envelope.Time{now, nt} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var back envelope.Time
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back != v {
			t.Errorf("round trip of %s through %s = %s, want identical", v, b, back)
		}
	}
}
