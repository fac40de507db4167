package domains_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

type laxColor string

func (laxColor) EnumValues() []string { return []string{"red", "green"} }

type laxPayload struct {
	Count   int           `json:"count"`
	Ratio   float64       `json:"ratio"`
	Flag    bool          `json:"flag"`
	Name    string        `json:"name"`
	ID      uuid.UUID     `json:"id"`
	At      envelope.Time `json:"at"`
	Color   laxColor      `json:"color"`
	Numbers []int         `json:"numbers"`
	Maybe   *int          `json:"maybe"`
}

const laxValid = `{"count":1,"ratio":0.5,"flag":true,"name":"n","id":"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11","at":"2026-01-29T10:00:00.123456Z","color":"red","numbers":[1],"maybe":null}`

func laxRegistry(t *testing.T) *domains.Registry {
	t.Helper()
	r := domains.NewRegistry()
	if err := domains.Register(r, domains.Spec[laxPayload]{RoutingKey: "lax.thing.done", Example: laxPayload{Color: "red", Numbers: []int{}}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// Each row of Pydantic v2's conversion table that the catalogue's types
// meet, accepted or refused as Pydantic does, and written canonically.
func TestNormalize_pydanticLaxConversionTable(t *testing.T) {
	r := laxRegistry(t)
	tests := []struct {
		field, in string
		want      string // the canonical value; "" means refused
	}{
		{"count", `900.0`, `900`},
		{"count", `"900"`, `900`},
		{"count", `" -1_000 "`, `-1000`},
		{"count", `"12.00"`, `12`},
		{"count", `true`, `1`},
		{"count", `false`, `0`},
		{"count", `1e3`, `1000`},
		{"count", `1.5`, ``},
		{"count", `"1.5"`, ``},
		{"count", `"abc"`, ``},
		{"count", `null`, ``},
		{"count", `[1]`, ``},
		{"ratio", `1`, `1`},
		{"ratio", `"1.5"`, `1.5`},
		{"ratio", `"2e3"`, `2000`},
		{"ratio", `true`, `1`},
		{"ratio", `"one"`, ``},
		{"ratio", `"inf"`, ``},
		{"flag", `1`, `true`},
		{"flag", `0.0`, `false`},
		{"flag", `"yes"`, `true`},
		{"flag", `"Off"`, `false`},
		{"flag", `"t"`, `true`},
		{"flag", `"0"`, `false`},
		{"flag", `2`, ``},
		{"flag", `"maybe"`, ``},
		{"name", `"ok"`, `"ok"`},
		{"name", `12`, ``},
		{"name", `true`, ``},
		// The validator takes every form Python's UUID() reads, so these
		// are valid as they are and pass unchanged.
		{"id", `"0B6F1C9E-3D55-4A57-9C57-2F7D0F0E6A11"`, `"0B6F1C9E-3D55-4A57-9C57-2F7D0F0E6A11"`},
		{"id", `"urn:uuid:0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11"`, `"urn:uuid:0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11"`},
		{"id", `"not-a-uuid"`, ``},
		{"id", `7`, ``},
		{"at", `1769680800`, `"2026-01-29T10:00:00.000000Z"`},
		{"at", `1769680800123`, `"2026-01-29T10:00:00.123000Z"`},
		{"at", `1769680800.5`, `"2026-01-29T10:00:00.500000Z"`},
		{"at", `"1769680800"`, `"2026-01-29T10:00:00.000000Z"`},
		{"at", `"2026-01-29T10:00:00+00:00"`, `"2026-01-29T10:00:00+00:00"`},
		{"at", `"yesterday"`, ``},
		{"at", `true`, ``},
		{"color", `"green"`, `"green"`},
		{"color", `"Green"`, ``},
		{"numbers", `["1", 2.0, true]`, `[1,2,1]`},
		{"numbers", `"1"`, ``},
		{"numbers", `["x"]`, ``},
		{"maybe", `"5"`, `5`},
		{"maybe", `null`, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+tt.in, func(t *testing.T) {
			in := replaceMember(t, laxValid, tt.field, tt.in)
			got, err := r.Normalize("lax.thing.done", []byte(in))
			if tt.want == "" {
				var ve *domains.ValidationError
				if !errors.As(err, &ve) || !strings.Contains(err.Error(), "payload."+tt.field) {
					t.Fatalf("Normalize(%s) = %s, %v; want a ValidationError on payload.%s", tt.in, got, err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize(%s): %v", tt.in, err)
			}
			if want := replaceMember(t, laxValid, tt.field, tt.want); string(got) != want {
				t.Errorf("Normalize(%s)\n got %s\nwant %s", tt.in, got, want)
			}
			if err := r.Validate("lax.thing.done", got); err != nil {
				t.Errorf("the normalized payload is not strictly valid: %v", err)
			}
			var p laxPayload
			if err := envelope.UnmarshalPayload(got, &p); err != nil {
				t.Errorf("the normalized payload does not decode: %v", err)
			}
		})
	}
}

// A valid payload comes back as the same bytes, and the strict path is
// untouched: Validate still refuses what only lax mode accepts.
func TestNormalize_validPayloadUnchangedAndValidateStaysStrict(t *testing.T) {
	r := laxRegistry(t)
	spaced := strings.ReplaceAll(laxValid, ",", ", ")
	got, err := r.Normalize("lax.thing.done", []byte(spaced))
	if err != nil || string(got) != spaced {
		t.Errorf("Normalize(valid) = %s, %v; want the payload unchanged", got, err)
	}
	lax := replaceMember(t, laxValid, "count", `"900"`)
	if err := r.Validate("lax.thing.done", []byte(lax)); err == nil {
		t.Error("Validate accepted a string for an integer")
	}
	if _, err := r.Normalize("lax.thing.unknown", []byte(laxValid)); !errors.Is(err, domains.ErrUnknownEventType) {
		t.Errorf("Normalize of an unknown key = %v, want ErrUnknownEventType", err)
	}
	if _, err := r.Normalize("lax.thing.done", []byte(`{"count": "1",`)); err == nil || !strings.Contains(err.Error(), "invalid JSON") {
		t.Errorf("Normalize of broken JSON = %v, want invalid JSON", err)
	}
}

// replaceMember sets one member of a compact JSON object to raw.
func replaceMember(t *testing.T, obj, name, raw string) string {
	t.Helper()
	key := `"` + name + `":`
	i := strings.Index(obj, key)
	if i < 0 {
		t.Fatalf("no member %s", name)
	}
	start := i + len(key)
	depth, end := 0, start
	for ; end < len(obj); end++ {
		c := obj[end]
		if c == '[' || c == '{' {
			depth++
		} else if c == ']' || c == '}' {
			if depth == 0 {
				break
			}
			depth--
		} else if c == ',' && depth == 0 {
			break
		}
	}
	return obj[:start] + raw + obj[end:]
}

// Decode takes what lax mode converts, so a typed consumer gets the value a
// Python consumer gets.
func TestDecode_convertsAsLaxMode(t *testing.T) {
	et, err := laxRegistry(t).LookupKey("lax.thing.done")
	if err != nil {
		t.Fatal(err)
	}
	v, err := et.Decode([]byte(replaceMember(t, replaceMember(t, laxValid, "count", `"900"`), "flag", `"yes"`)))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if p := v.(laxPayload); p.Count != 900 || !p.Flag {
		t.Errorf("Decode = %+v, want Count 900 and Flag true", p)
	}
	if _, err := et.Decode([]byte(replaceMember(t, laxValid, "count", `"1.5"`))); err == nil {
		t.Error(`Decode accepted "1.5" for an integer`)
	}
}
