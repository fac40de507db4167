package envelope_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// The expected ids below were computed with CPython 3.11:
//
//	k = "|".join(f"{a}={b}" for a, b in sorted(fields.items()))
//	uuid5(NAMESPACE_OID, f"bloodbank:{event_type}:{k}")
//
// The input string is stated with each vector so that a failure shows which
// rendering differs.
func TestDeterministicID_vectors(t *testing.T) {
	pointOne, pointTwo := 0.1, 0.2
	type myID string
	meeting := uuid.MustParse("0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11")
	tests := []struct {
		name      string
		eventType string
		fields    map[string]any
		input     string // the uuid5 name Python hashes
		want      string
	}{
		{
			name:      "wire contract: one field",
			eventType: "fireflies.transcript.upload",
			fields:    map[string]any{"meeting_id": "abc123"},
			input:     "bloodbank:fireflies.transcript.upload:meeting_id=abc123",
			want:      "70117275-3199-5e4c-a175-71646fb33ad7",
		},
		{
			name:      "wire contract: fields sorted by name",
			eventType: "fireflies.transcript.upload",
			fields:    map[string]any{"user_id": "user_456", "meeting_id": "abc123"},
			input:     "bloodbank:fireflies.transcript.upload:meeting_id=abc123|user_id=user_456",
			want:      "dcbf406d-aaae-5a9a-8b36-38bb4f5ac1e7",
		},
		{
			name:      "github pr: int field",
			eventType: "github.pr.created",
			fields:    map[string]any{"repo_owner": "33god", "repo_name": "bloodbank", "pr_number": 42},
			input:     "bloodbank:github.pr.created:pr_number=42|repo_name=bloodbank|repo_owner=33god",
			want:      "95ea734d-6484-515c-8d51-a96a6ae91efa",
		},
		{
			name:      "bools, None, negative and uint64 ints",
			eventType: "test.types",
			fields: map[string]any{
				"flag": true, "off": false, "missing": nil,
				"count": int8(-7), "big": uint64(math.MaxUint64),
			},
			input: "bloodbank:test.types:big=18446744073709551615|count=-7|flag=True|missing=None|off=False",
			want:  "8cd8b4a6-77e6-51c9-add4-404e9c92ba29",
		},
		{
			name:      "floats as Python repr",
			eventType: "test.floats",
			fields: map[string]any{
				"a": 1.0, "b": 0.5, "c": 1e20, "d": 1e16, "e": 1e15, "f": 0.0001, "g": 0.00001,
				"h": math.Copysign(0, -1), "i": pointOne + pointTwo, // at run time: constants would fold to exactly 0.3
				"j": math.Inf(1), "k": math.NaN(),
				"l": 123456789.125, "m": 5e-324, "n": math.MaxFloat64,
			},
			input: "bloodbank:test.floats:a=1.0|b=0.5|c=1e+20|d=1e+16|e=1000000000000000.0|f=0.0001|g=1e-05|h=-0.0|" +
				"i=0.30000000000000004|j=inf|k=nan|l=123456789.125|m=5e-324|n=1.7976931348623157e+308",
			want: "381ee808-cbc4-582d-bc51-c699b6587864",
		},
		{
			name:      "non-ASCII hashed as UTF-8",
			eventType: "test.unicode",
			fields:    map[string]any{"z": "日本", "name": "héllo wörld"},
			input:     "bloodbank:test.unicode:name=héllo wörld|z=日本",
			want:      "1f0ab3c5-3572-5bba-b6b5-788b72b77e42",
		},
		{
			name:      "no fields",
			eventType: "test.empty",
			fields:    nil,
			input:     "bloodbank:test.empty:",
			want:      "04cf97e9-fe1f-5f4c-8df3-e19f32590527",
		},
		{
			name:      "uuid value as str(UUID)",
			eventType: "test.uuid",
			fields:    map[string]any{"meeting_id": meeting},
			input:     "bloodbank:test.uuid:meeting_id=0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11",
			want:      "555e49bf-7229-530e-8191-73a87bca9eca",
		},
		{
			name:      "named string type, pointers, nil pointer",
			eventType: "fireflies.transcript.upload",
			fields:    map[string]any{"meeting_id": ptr(myID("abc123")), "user_id": ptr("user_456")},
			input:     "bloodbank:fireflies.transcript.upload:meeting_id=abc123|user_id=user_456",
			want:      "dcbf406d-aaae-5a9a-8b36-38bb4f5ac1e7",
		},
		{
			name:      "json.Number and big.Int",
			eventType: "test.types",
			fields: map[string]any{
				"flag": true, "off": false, "missing": (*string)(nil),
				"count": json.Number("-7"), "big": new(big.Int).SetUint64(math.MaxUint64),
			},
			input: "bloodbank:test.types:big=18446744073709551615|count=-7|flag=True|missing=None|off=False",
			want:  "8cd8b4a6-77e6-51c9-add4-404e9c92ba29",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The stated input is what the formula hashes.
			if got := uuid.NewSHA1(uuid.NameSpaceOID, []byte(tt.input)).String(); got != tt.want {
				t.Fatalf("uuid5(NAMESPACE_OID, %q) = %s, want %s: the vector is inconsistent", tt.input, got, tt.want)
			}
			got, err := envelope.DeterministicID(tt.eventType, tt.fields)
			if err != nil {
				t.Fatalf("DeterministicID: %v", err)
			}
			if got.String() != tt.want {
				key, _ := envelope.UniqueKey(tt.fields)
				t.Errorf("DeterministicID = %s, want %s (hashed %q, want %q)",
					got, tt.want, "bloodbank:"+tt.eventType+":"+key, tt.input)
			}
		})
	}
}

func TestDeterministicIDOf_matchesMap(t *testing.T) {
	tests := []struct {
		fields []envelope.Field
		want   string
	}{
		{[]envelope.Field{envelope.StrField("meeting_id", "abc123")}, "70117275-3199-5e4c-a175-71646fb33ad7"},
		{[]envelope.Field{envelope.StrField("user_id", "user_456"), envelope.StrField("meeting_id", "abc123")}, "dcbf406d-aaae-5a9a-8b36-38bb4f5ac1e7"},
	}
	for _, tt := range tests {
		if got := envelope.DeterministicIDOf("fireflies.transcript.upload", tt.fields...); got.String() != tt.want {
			t.Errorf("DeterministicIDOf(%v) = %s, want %s", tt.fields, got, tt.want)
		}
	}
	got := envelope.DeterministicIDOf("test.types",
		envelope.IntField("big", -1), envelope.IntField("count", -7), envelope.BoolField("flag", true),
		envelope.NoneField("missing"), envelope.BoolField("off", false))
	// "bloodbank:test.types:big=-1|count=-7|flag=True|missing=None|off=False"
	want := uuid.NewSHA1(uuid.NameSpaceOID, []byte("bloodbank:test.types:big=-1|count=-7|flag=True|missing=None|off=False"))
	if got != want {
		t.Errorf("DeterministicIDOf = %s, want %s", got, want)
	}
	got = envelope.DeterministicIDOf("test.floats", envelope.FloatField("a", 1), envelope.UUIDField("u", uuid.Nil))
	// "bloodbank:test.floats:a=1.0|u=00000000-0000-0000-0000-000000000000"
	want = uuid.NewSHA1(uuid.NameSpaceOID, []byte("bloodbank:test.floats:a=1.0|u=00000000-0000-0000-0000-000000000000"))
	if got != want {
		t.Errorf("DeterministicIDOf floats = %s, want %s", got, want)
	}
}

func TestDeterministicIDFromKey_pythonFreeFormKey(t *testing.T) {
	// Python: tracker.generate_event_id("fireflies.transcript.upload", "meeting_id=abc123")
	got := envelope.DeterministicIDFromKey("fireflies.transcript.upload", "meeting_id=abc123")
	if got.String() != "70117275-3199-5e4c-a175-71646fb33ad7" {
		t.Errorf("DeterministicIDFromKey = %s", got)
	}
}

func TestUniqueKey_floatRendering(t *testing.T) {
	// Each want is CPython 3.11's str(float).
	tests := []struct {
		in   float64
		want string
	}{
		{1, "1.0"}, {0.5, "0.5"}, {-2, "-2.0"}, {1e20, "1e+20"}, {1e16, "1e+16"},
		{1e15, "1000000000000000.0"}, {9999999999999998, "9999999999999998.0"},
		{0.0001, "0.0001"}, {0.00001, "1e-05"}, {1e-7, "1e-07"}, {2.5e-5, "2.5e-05"},
		{1.5e300, "1.5e+300"}, {1e22, "1e+22"}, {12345678901234567890.0, "1.2345678901234567e+19"},
		{math.Inf(-1), "-inf"}, {0, "0.0"},
	}
	for _, tt := range tests {
		got, err := envelope.UniqueKey(map[string]any{"x": tt.in})
		if err != nil {
			t.Fatalf("UniqueKey(%v): %v", tt.in, err)
		}
		if got != "x="+tt.want {
			t.Errorf("UniqueKey(%v) = %q, want %q", tt.in, got, "x="+tt.want)
		}
	}
}

func TestDeterministicID_unrenderableValue(t *testing.T) {
	for name, v := range map[string]any{
		"float32": float32(0.1),
		"time":    time.Unix(0, 0),
		"slice":   []string{"a"},
		"map":     map[string]any{"a": 1},
		"struct":  struct{ A int }{1},
	} {
		_, err := envelope.DeterministicID("x.y", map[string]any{"ok": "v", "bad": v})
		if !errors.Is(err, envelope.ErrIDFieldValue) {
			t.Errorf("%s: err = %v, want ErrIDFieldValue", name, err)
		}
		var fe *envelope.IDFieldError
		if !errors.As(err, &fe) || fe.Field != "bad" {
			t.Errorf("%s: err = %v, want *IDFieldError for field bad", name, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
