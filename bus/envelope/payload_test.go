package envelope_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/33god/bloodbank-go/bus/envelope"
)

type bbtStatus string

// bbtItem has a default, which only a payload's own fields may have.
type bbtItem struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled" default:"true"`
}

type bbtEmbedded struct {
	Origin string `json:"origin" default:"python"`
}

// bbtDefaults has a field for every kind of `default` tag.
type bbtDefaults struct {
	bbtEmbedded
	ID        string         `json:"id"`
	Tags      []string       `json:"tags" default:"[]"`
	Meta      map[string]any `json:"meta" default:"{}"`
	Retryable bool           `json:"retryable" default:"true"`
	Count     int            `json:"count" default:"0"`
	Limit     int            `json:"limit" default:"10"`
	Ratio     *float64       `json:"ratio" default:"0.5"`
	Status    bbtStatus      `json:"status" default:"ok"`
	Backend   string         `json:"backend" default:"\"redis\""`
	At        envelope.Time  `json:"at" default:"now"`
	StdAt     time.Time      `json:"std_at" default:"now"`
	Optional  *string        `json:"optional"`
}

var bbtDefaultedNames = []string{"origin", "tags", "meta", "retryable", "count", "limit", "ratio", "status", "backend", "at", "std_at"}

func bbtCheckDefaults(t *testing.T, got bbtDefaults, before time.Time) {
	t.Helper()
	if got.Origin != "python" || got.Tags == nil || len(got.Tags) != 0 || got.Meta == nil || len(got.Meta) != 0 ||
		!got.Retryable || got.Count != 0 || got.Limit != 10 || got.Ratio == nil || *got.Ratio != 0.5 ||
		got.Status != "ok" || got.Backend != `"redis"` {
		t.Errorf("defaults not applied: %+v", got)
	}
	for name, at := range map[string]time.Time{"at": got.At.Time, "std_at": got.StdAt} {
		if at.Before(before) || at.After(time.Now()) || at.Location() != time.UTC || at.Nanosecond()%1000 != 0 {
			t.Errorf("%s = %s, want the time of decoding in UTC microseconds", name, at)
		}
	}
}

func TestUnmarshalPayload_defaultsForAbsentAndNull(t *testing.T) {
	full := map[string]any{}
	for _, n := range bbtDefaultedNames {
		full[n] = nil
	}
	nulls, _ := json.Marshal(full)
	for name, payload := range map[string]string{"absent": `{"id":"a"}`, "null": string(nulls), "payload null": `null`} {
		t.Run(name, func(t *testing.T) {
			before := time.Now().Add(-time.Millisecond)
			var got bbtDefaults
			if err := envelope.UnmarshalPayload([]byte(payload), &got); err != nil {
				t.Fatal(err)
			}
			bbtCheckDefaults(t, got, before)
		})
	}
}

func TestUnmarshalPayload_explicitValuesKept(t *testing.T) {
	payload := `{"origin":"","tags":[],"meta":{"k":1},"retryable":false,"count":3,"limit":0,"ratio":0,"status":"",` +
		`"backend":"file","at":"2026-01-29T10:00:00Z","std_at":"2026-01-29T10:00:00Z","optional":null}`
	var got bbtDefaults
	if err := envelope.UnmarshalPayload([]byte(payload), &got); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC)
	if got.Origin != "" || got.Tags == nil || len(got.Tags) != 0 || got.Meta["k"] != float64(1) || got.Retryable || got.Count != 3 ||
		got.Limit != 0 || got.Ratio == nil || *got.Ratio != 0 || got.Status != "" || got.Backend != "file" ||
		!got.At.Equal(at) || !got.StdAt.Equal(at) || got.Optional != nil {
		t.Errorf("explicit values changed: %+v", got)
	}
}

// A `default` tag below the payload's own fields is refused, not ignored.
func TestUnmarshalPayload_nestedDefaultsRefused(t *testing.T) {
	type inSlice struct {
		Items []bbtItem `json:"items"`
	}
	type inMap struct {
		ByName map[string]*bbtItem `json:"by_name"`
	}
	for _, v := range []any{&inSlice{}, &inMap{}} {
		err := envelope.UnmarshalPayload([]byte(`{}`), v)
		if err == nil || !strings.Contains(err.Error(), "bbtItem.Enabled") {
			t.Errorf("UnmarshalPayload into %T: error %v, want one naming bbtItem.Enabled", v, err)
		}
		if _, err := envelope.MarshalPayload(v); err == nil {
			t.Errorf("MarshalPayload(%T) = nil error", v)
		}
	}
}

// Defaults are values of their own: changing one decoded value does not
// change the next.
func TestUnmarshalPayload_defaultsNotShared(t *testing.T) {
	var a, b bbtDefaults
	if envelope.UnmarshalPayload([]byte(`{}`), &a) != nil || envelope.UnmarshalPayload([]byte(`{}`), &b) != nil {
		t.Fatal("decode failed")
	}
	a.Meta["k"] = 1
	*a.Ratio = 7
	if len(b.Meta) != 0 || *b.Ratio != 0.5 {
		t.Errorf("second decode shares the first one's defaults: %+v", b)
	}
}

func TestUnmarshalPayload_errors(t *testing.T) {
	var v bbtDefaults
	for _, payload := range []string{`{"tags":"x"}`, `{"retryable":1}`, `{"id":"a"`, `{"id":"a"} x`, `[]`, "{\"id\":\"\xff\"}"} {
		if err := envelope.UnmarshalPayload([]byte(payload), &v); err == nil {
			t.Errorf("UnmarshalPayload(%q) = nil error", payload)
		}
	}
	if err := envelope.UnmarshalPayload([]byte(`{}`), v); err == nil {
		t.Error("UnmarshalPayload into a non-pointer = nil error")
	}
	type badDefault struct {
		N int `json:"n" default:"many"`
	}
	var bad badDefault
	if err := envelope.UnmarshalPayload([]byte(`{}`), &bad); err == nil || !strings.Contains(err.Error(), "many") {
		t.Errorf("UnmarshalPayload with default:\"many\" on an int: error %v, want one quoting it", err)
	}
	if _, err := envelope.MarshalPayload(bad); err == nil {
		t.Error("MarshalPayload with default:\"many\" on an int = nil error")
	}
}

// Names match exactly, as in Python; a repeated member's last value wins.
func TestUnmarshalPayload_namesAndDuplicates(t *testing.T) {
	var got bbtDefaults
	if err := envelope.UnmarshalPayload([]byte(`{"ID":"upper","id":"a","id":"b","retryable":false,"retryable":null}`), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "b" || !got.Retryable {
		t.Errorf("got ID %q retryable %v, want b and the default true", got.ID, got.Retryable)
	}
}

func TestMarshalPayload_writesDefaultsOfUnsetFields(t *testing.T) {
	before := time.Now().Add(-time.Millisecond)
	in := bbtDefaults{ID: "a"}
	b, err := envelope.MarshalPayload(in)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"origin":"python"`, `"tags":[]`, `"meta":{}`, `"retryable":false`, `"limit":0`, `"ratio":0.5`,
		`"status":"ok"`, `"backend":"\"redis\""`, `"optional":null`} {
		if !strings.Contains(s, want) {
			t.Errorf("MarshalPayload = %s, want it to contain %s", s, want)
		}
	}
	var back bbtDefaults
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.At.Before(before) || back.StdAt.Before(before) {
		t.Errorf("zero times written as %s and %s, want the time of encoding", back.At, back.StdAt)
	}
	// The caller's value is left alone.
	if in.Tags != nil || in.Meta != nil || !in.At.IsZero() || in.Ratio != nil || in.Origin != "" {
		t.Errorf("MarshalPayload changed its argument: %+v", in)
	}
	// A pointer encodes as its value, and a value without defaults as it is.
	if pb, err := envelope.MarshalPayload(&in); err != nil || !strings.Contains(string(pb), `"tags":[]`) {
		t.Errorf("MarshalPayload(&v) = %s, %v", pb, err)
	}
	if pb, err := envelope.MarshalPayload(map[string]any{"b": "<&>", "a": nil}); err != nil || string(pb) != `{"a":null,"b":"<&>"}` {
		t.Errorf("MarshalPayload(map) = %s, %v", pb, err)
	}
}

// New encodes a payload value with MarshalPayload.
func TestNew_payloadDefaults(t *testing.T) {
	env, err := envelope.New("x.y", bbtDefaults{ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := envelope.DecodePayload[bbtDefaults](env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env.Payload), `"tags":[]`) || got.Status != "ok" || got.At.IsZero() {
		t.Errorf("payload = %s", env.Payload)
	}
}

// A json.Number, as decoding with UseNumber gives, is written as the number
// it spells, in a payload and in a meta map alike.
func TestMarshalPayload_jsonNumber(t *testing.T) {
	b, err := envelope.MarshalPayload(map[string]any{"n": json.Number("12345678901234567890"), "f": json.Number("1.5e3")})
	if err != nil || string(b) != `{"f":1.5e3,"n":12345678901234567890}` {
		t.Errorf("MarshalPayload = %s, %v", b, err)
	}
	if _, err := envelope.MarshalPayload(map[string]any{"n": json.Number("twelve")}); err == nil {
		t.Error("MarshalPayload of json.Number(\"twelve\") = nil error")
	}
	env, err := envelope.New("x.y", map[string]any{}, envelope.WithSource(envelope.Source{Host: "h", Type: envelope.TriggerManual, Meta: map[string]any{"pid": json.Number("42")}}))
	if err != nil {
		t.Fatal(err)
	}
	body, err := env.MarshalJSON()
	if err != nil || !strings.Contains(string(body), `"meta":{"pid":42}`) {
		t.Errorf("MarshalJSON = %s, %v", body, err)
	}
}
