package domains_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

// shipment exercises every kind of field the schema generator emits.
type shipment struct {
	ID        uuid.UUID        `json:"id"`
	Carrier   carrier          `json:"carrier"`
	Weight    float64          `json:"weight"`
	Pieces    int              `json:"pieces"`
	Fragile   bool             `json:"fragile"`
	ShippedAt envelope.Time    `json:"shipped_at"`
	Parcels   []parcel         `json:"parcels"`
	Counts    map[string]int   `json:"counts" default:"{}"`
	Labels    []string         `json:"labels" default:"[]"`
	Note      *string          `json:"note"`
	Extra     map[string]any   `json:"extra"`
	Route     *route           `json:"route"`
	Legacy    string           `json:"legacy,omitempty"`
	Nested    map[string]route `json:"nested" default:"{}"`
}

type carrier string

func (carrier) EnumValues() []string { return []string{"dhl", "ups"} }

type parcel struct {
	Code  string   `json:"code"`
	Dims  []int    `json:"dims"`
	Where *address `json:"where"`
}

type address struct {
	City string `json:"city"`
}

type route struct {
	From string `json:"from"`
}

const validShipment = `{
	"id": "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11", "carrier": "dhl", "weight": 1.5, "pieces": 2,
	"fragile": false, "shipped_at": "2026-01-29T10:00:00.123456Z",
	"parcels": [{"code": "P1", "dims": [1, 2, 3], "where": {"city": "Lyon"}}, {"code": "P2", "dims": [], "where": null}],
	"counts": {"a": 1}, "labels": ["x"], "note": null, "extra": {"any": [1, {"thing": null}]}, "route": null,
	"nested": {"r1": {"from": "Paris"}}
}`

func shipmentRegistry(t testing.TB) *domains.Registry {
	t.Helper()
	r := domains.NewRegistry()
	var example shipment
	if err := json.Unmarshal([]byte(validShipment), &example); err != nil {
		t.Fatal(err)
	}
	if err := domains.Register(r, domains.Spec[shipment]{RoutingKey: "logistics.shipment.sent", Example: example}); err != nil {
		t.Fatalf("Register = %v", err)
	}
	return r
}

// withField returns validShipment with one top-level field replaced (or
// removed, for value "").
func withField(t *testing.T, field, value string) []byte {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(validShipment), &obj); err != nil {
		t.Fatal(err)
	}
	if value == "" {
		delete(obj, field)
	} else {
		obj[field] = json.RawMessage(value)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidate_validPayload(t *testing.T) {
	r := shipmentRegistry(t)
	if err := r.Validate("logistics.shipment.sent", []byte(validShipment)); err != nil {
		t.Fatalf("Validate = %v", err)
	}
}

func TestValidate_reportsProblemWithPath(t *testing.T) {
	r := shipmentRegistry(t)
	tests := []struct {
		field, value string
		want         []string
	}{
		{"id", `"not-a-uuid"`, []string{`payload.id: expected a UUID, got "not-a-uuid"`}},
		{"id", `""`, []string{`payload.id: expected a UUID, got ""`}},
		{"carrier", `"fedex"`, []string{`payload.carrier: expected one of "dhl", "ups", got "fedex"`}},
		{"carrier", `null`, []string{`payload.carrier: expected string, got null`}},
		{"weight", `"heavy"`, []string{`payload.weight: expected number, got string`}},
		{"pieces", `2.5`, []string{`payload.pieces: expected integer, got number`}},
		{"pieces", `2e3`, []string{`payload.pieces: expected integer, got number`}},
		{"pieces", `12345678901234567890`, []string{`payload.pieces: integer out of range`}},
		{"fragile", `"no"`, []string{`payload.fragile: expected boolean, got string`}},
		{"shipped_at", `"yesterday"`, []string{`payload.shipped_at: expected an ISO-8601 date-time, got "yesterday"`}},
		{"shipped_at", `1738144800`, []string{`payload.shipped_at: expected string, got integer`}},
		{"parcels", `{}`, []string{`payload.parcels: expected array, got object`}},
		{"parcels", `[{"code": 1, "dims": [1, "2"], "where": {}}]`, []string{
			`payload.parcels[0].code: expected string, got integer`,
			`payload.parcels[0].dims[1]: expected integer, got string`,
			`payload.parcels[0].where.city: required`,
		}},
		{"parcels", `[{"code": "a", "dims": []}, {"dims": []}]`, []string{`payload.parcels[1].code: required`}},
		{"counts", `{"a": "one", "b c": true}`, []string{
			`payload.counts.a: expected integer, got string`,
			`payload.counts["b c"]: expected integer, got boolean`,
		}},
		{"counts", `null`, []string{`payload.counts: expected object, got null`}},
		{"labels", `"x"`, []string{`payload.labels: expected array, got string`}},
		{"note", `5`, []string{`payload.note: expected string or null, got integer`}},
		{"extra", `[]`, []string{`payload.extra: expected object or null, got array`}},
		{"route", `{"from": 1}`, []string{`payload.route.from: expected string, got integer`}},
		{"nested", `{"r1": {}}`, []string{`payload.nested.r1.from: required`}},
		{"pieces", ``, []string{`payload.pieces: required`}},
		{"parcels", ``, []string{`payload.parcels: required`}},
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+tt.value, func(t *testing.T) {
			err := r.Validate("logistics.shipment.sent", withField(t, tt.field, tt.value))
			var verr *domains.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			var got []string
			for _, p := range verr.Problems {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestValidate_acceptsOptionalAndDefaultedFieldsAbsent(t *testing.T) {
	r := shipmentRegistry(t)
	payload := `{"id": "0b6f1c9e3d554a579c572f7d0f0e6a11", "carrier": "ups", "weight": 3, "pieces": 1,
		"fragile": true, "shipped_at": "2026-01-29T10:00:00", "parcels": []}`
	if err := r.Validate("logistics.shipment.sent", []byte(payload)); err != nil {
		t.Errorf("Validate = %v, want nil: optional, defaulted and omitempty fields may be absent", err)
	}
}

func TestValidate_acceptsEveryTimestampFormOnTheBus(t *testing.T) {
	r := shipmentRegistry(t)
	for _, ts := range []string{
		"2026-01-29T10:00:00.123456Z",
		"2026-01-29T10:00:00.123456+00:00",
		"2026-01-29T10:00:00.123456",
		"2026-01-29T10:00:00+02:00",
		"2026-01-29T10:00:00",
		"2026-01-29 10:00:00.123456",
	} {
		if err := r.Validate("logistics.shipment.sent", withField(t, "shipped_at", `"`+ts+`"`)); err != nil {
			t.Errorf("Validate(shipped_at=%s) = %v, want nil", ts, err)
		}
	}
}

func TestValidate_escapedStringsAreDecoded(t *testing.T) {
	r := shipmentRegistry(t)
	// "\u0064hl" is "dhl"; the key "\u0063arrier" is "carrier".
	payload := strings.Replace(validShipment, `"carrier": "dhl"`, `"\u0063arrier": "\u0064hl"`, 1)
	if err := r.Validate("logistics.shipment.sent", []byte(payload)); err != nil {
		t.Errorf("Validate = %v, want nil", err)
	}
}

func TestValidate_unknownPropertiesAreAllowed(t *testing.T) {
	r := shipmentRegistry(t)
	if err := r.Validate("logistics.shipment.sent", withField(t, "added_in_python_v2", `{"deep": [1, 2, {"x": null}]}`)); err != nil {
		t.Errorf("Validate = %v, want nil", err)
	}
}

func TestValidate_nonObjectPayload(t *testing.T) {
	r := shipmentRegistry(t)
	tests := map[string]string{
		`[]`:      "payload: expected object, got array",
		`"text"`:  "payload: expected object, got string",
		`null`:    "payload: expected object, got null",
		` 42 `:    "payload: expected object, got integer",
		`true`:    "payload: expected object, got boolean",
		`{"id":}`: "payload: invalid JSON: invalid character '}' looking for beginning of value",
		``:        "payload: invalid JSON: unexpected end of JSON input",
		`{} {}`:   "payload: invalid JSON: invalid character '{' after top-level value",
	}
	for payload, want := range tests {
		err := r.Validate("logistics.shipment.sent", []byte(payload))
		if err == nil || err.Error() != want {
			t.Errorf("Validate(%q) = %v, want %q", payload, err, want)
		}
		if !errors.Is(err, domains.ErrInvalidPayload) {
			t.Errorf("Validate(%q) = %v, want it to match ErrInvalidPayload", payload, err)
		}
	}
}

func TestValidationError_Error(t *testing.T) {
	err := &domains.ValidationError{Problems: []domains.Problem{
		{Path: "payload.tags", Message: "expected array, got string"},
		{Path: "payload.prompt", Message: "required"},
	}}
	if got, want := err.Error(), "payload.tags: expected array, got string; payload.prompt: required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestRegistry_ValidateValue(t *testing.T) {
	r := shipmentRegistry(t)
	err := r.ValidateValue("logistics.shipment.sent", shipment{Carrier: "dhl"})
	// ValidateValue encodes as New does: the defaulted collections are
	// written as [] and {}, and parcels, which has no default, as null,
	// which Python rejects.
	want := "payload.parcels: expected array, got null"
	if err == nil || err.Error() != want {
		t.Errorf("ValidateValue = %v, want %q", err, want)
	}
}

// TestValidate_nestingLimitIsEncodingJSONs: the decoder stops at the depth
// where encoding/json stops, so a hostile payload cannot grow the stack and
// a deep but legal one is read.
func TestValidate_nestingLimitIsEncodingJSONs(t *testing.T) {
	r := shipmentRegistry(t)
	for _, depth := range []int{10000, 10001} {
		arrays := strings.Repeat("[", depth-2) + strings.Repeat("]", depth-2)
		payload := []byte(strings.Replace(validShipment, `"extra": {"any"`, `"extra": {"deep": `+arrays+`, "any"`, 1))
		err := r.Validate("logistics.shipment.sent", payload)
		if (err == nil) != json.Valid(payload) {
			t.Errorf("depth %d: Validate = %v, json.Valid = %v", depth, err, json.Valid(payload))
		}
	}
}

// FuzzValidate_syntaxAgreesWithEncodingJSON holds the validator's decoder
// (jsontext, configured as encoding/json reads) to encoding/json: whatever
// the validator accepts, every Go reader must be able to read, and the
// other way round.
func FuzzValidate_syntaxAgreesWithEncodingJSON(f *testing.F) {
	for _, seed := range []string{
		validShipment, `{}`, `{"a":1}`, `{"a":[1,2,{"b":null}]}`, `{"a":"\u00e9\n\"x\""}`, `{"a":-0.5e+10}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}",
		`{"a":tru}`, `{"a":nul}`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `{,}`, `{"a":1}}`, `{"a":[}`, `   `, `{"a":"b"`,
	} {
		f.Add([]byte(seed))
	}
	r := shipmentRegistry(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := r.Validate("logistics.shipment.sent", payload)
		var verr *domains.ValidationError
		rejected := errors.As(err, &verr) && strings.HasPrefix(verr.Problems[0].Message, "invalid JSON")
		if rejected == json.Valid(payload) {
			t.Errorf("Validate(%q): invalid JSON reported = %v, but json.Valid = %v", payload, rejected, json.Valid(payload))
		}
	})
}
