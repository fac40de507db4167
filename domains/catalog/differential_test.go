package catalog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

// The compiled validator (domains) is held to santhosh-tekuri/jsonschema/v6,
// a general draft 2020-12 validator, on every registered schema: both must
// accept and reject the same documents. Where they may differ is spelled
// out here, each time because the validator follows what the readers of
// the bus (Go's decoding and Python's models) accept rather than the letter
// of JSON Schema:
//
//   - format date-time is what envelope.ParseTimestamp reads (Z, +00:00 and
//     naive forms, a space for the T, a date alone), and format uuid what
//     uuid.Parse reads (also without dashes, in braces, as a URN). The
//     reference checks these two formats with the same readers (busFormats)
//     and then must agree exactly; TestBusFormats_againstRFC3339 shows where
//     they differ from the standard's formats.
//   - type integer is what a Go int decodes: no fraction or exponent and
//     within int64. JSON Schema also counts 2.0, 1e3 and
//     12345678901234567890 as integers (goIntOnly).
//   - a name that occurs twice in one object: every occurrence is checked,
//     as encoding/json decodes every occurrence, while the reference sees
//     only the last (duplicateNames).

// reference is santhosh-tekuri's verdict on one registered type.
type reference struct {
	et     *domains.EventType
	schema *jsonschema.Schema
}

func (r reference) validate(payload []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return err
	}
	return r.schema.Validate(doc)
}

// busFormats replace the reference's date-time and uuid checks with the
// readers of the bus: the one documented exception to JSON Schema's formats.
var busFormats = []*jsonschema.Format{
	{Name: "date-time", Validate: func(v any) error {
		if s, ok := v.(string); ok {
			_, err := envelope.ParseTimestamp(s)
			return err
		}
		return nil
	}},
	{Name: "uuid", Validate: func(v any) error {
		if s, ok := v.(string); ok {
			_, err := uuid.Parse(s)
			return err
		}
		return nil
	}},
}

func compileReference(t testing.TB, et *domains.EventType, formats []*jsonschema.Format) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(et.Schema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, f := range formats {
		c.RegisterFormat(f)
	}
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("schema.json")
	if err != nil {
		t.Fatalf("%s: the schema does not compile as draft 2020-12: %v", et.Name(), err)
	}
	return schema
}

func references(t testing.TB) []reference {
	t.Helper()
	var refs []reference
	for _, et := range newCatalog(t).Events(domains.Filter{}) {
		refs = append(refs, reference{et: et, schema: compileReference(t, et, busFormats)})
	}
	return refs
}

// Why two verdicts may differ: one of the documented exceptions.
const (
	agreed         = "agreed"
	goInt          = "a number JSON Schema counts as an integer and a Go int cannot hold"
	duplicateNames = "a name twice in one object, the first occurrence invalid"
)

// compare returns why the validators' verdicts on payload may differ, and
// fails t when they differ for no documented reason.
func compare(t *testing.T, r reference, payload []byte) string {
	t.Helper()
	ours := r.et.Validate(payload)
	var problems *domains.ValidationError
	if ours != nil && !errors.As(ours, &problems) {
		t.Fatalf("%s: Validate = %v, want nil or a *ValidationError", r.et.Name(), ours)
	}
	theirs := r.validate(payload)
	ourSyntax := problems != nil && strings.HasPrefix(problems.Problems[0].Message, "invalid JSON")
	theirSyntax := theirs != nil && !errors.As(theirs, new(*jsonschema.ValidationError))
	switch {
	case ourSyntax != theirSyntax:
	case (ours == nil) == (theirs == nil):
		return agreed
	case ours != nil && goIntOnly(problems.Problems):
		return goInt
	case ours != nil && hasDuplicateNames(payload):
		return duplicateNames
	}
	t.Errorf("%s: the validators disagree\nours:      %v\nreference: %v\npayload: %s", r.et.Name(), ours, theirs, payload)
	return ""
}

// goIntOnly reports whether every problem is a number that JSON Schema
// counts as an integer but a Go int cannot hold.
func goIntOnly(problems []domains.Problem) bool {
	return !slices.ContainsFunc(problems, func(p domains.Problem) bool {
		return p.Message != "integer out of range" &&
			!(strings.HasPrefix(p.Message, "expected integer") && strings.HasSuffix(p.Message, ", got number"))
	})
}

// hasDuplicateNames reports whether an object in payload has a name twice.
func hasDuplicateNames(payload []byte) bool {
	err := jsontext.NewDecoder(bytes.NewReader(payload), jsontext.AllowInvalidUTF8(true)).SkipValue()
	return errors.Is(err, jsontext.ErrDuplicateName)
}

// FuzzValidate_agreesWithReference feeds both validators documents for
// every registered type: its example and mutations of it (each field
// removed, or replaced by a value of another type, null, a bad enum value,
// a bad UUID, other date-time and UUID forms, nested arrays), then whatever
// the fuzzer makes of them. which picks the type.
func FuzzValidate_agreesWithReference(f *testing.F) {
	refs := references(f)
	for i, r := range refs {
		for _, doc := range mutations(f, r.et.Example()) {
			f.Add(uint8(i), doc)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		compare(t, refs[int(which)%len(refs)], payload)
	})
}

// replacements stand in for a value in mutations: each JSON type, numbers a
// Go int refuses, nested arrays and objects.
var replacements = []string{
	`null`, `true`, `0`, `-1`, `1.5`, `2.0`, `1e3`, `12345678901234567890`, `""`,
	`[]`, `{}`, `[[]]`, `[{}]`, `[null]`, `["x", 1]`, `{"a": [1, {"b": null}]}`,
}

// stringReplacements stand in for a string: values no enum or format
// accepts, the date-time and UUID forms of the bus, an escape.
var stringReplacements = []string{
	`"bogus"`, `"2026-01-29T10:00:00"`, `"2026-01-29T10:00:00.123456+00:00"`, `"2026-01-29 10:00:00"`, `"2026-01-29"`,
	`"2026-01-29t10:00:00z"`, `"2016-12-31T23:59:60Z"`,
	`"0b6f1c9e3d554a579c572f7d0f0e6a11"`, `"{0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11}"`, `"0B6F1C9E-3D55-4A57-9C57-2F7D0F0E6A11"`,
	`"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a1"`, `"\u0064hl"`,
}

// mutations returns example and, for every value in it (the first item of
// an array), documents with that value removed or replaced; and
// for every top-level name, the example with that name written twice, the
// first time with a value no field accepts.
func mutations(t testing.TB, example []byte) [][]byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(example))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		t.Fatal(err)
	}
	docs := [][]byte{example, []byte(`{}`), []byte(`[]`), []byte(`null`)}
	add := func() {
		b, err := json.Marshal(root)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	instead := func(old any) []string {
		if _, ok := old.(string); ok {
			return slices.Concat(replacements, stringReplacements)
		}
		return replacements
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				old := v[k]
				delete(v, k)
				add()
				for _, r := range instead(old) {
					v[k] = json.RawMessage(r)
					add()
				}
				v[k] = old
				walk(old)
			}
			v["added_in_python_v2"] = json.RawMessage(`{"deep": [1, {"x": null}]}`)
			add()
			delete(v, "added_in_python_v2")
		case []any:
			if len(v) > 0 {
				old := v[0]
				for _, r := range instead(old) {
					v[0] = json.RawMessage(r)
					add()
				}
				v[0] = old
				walk(old)
			}
		}
	}
	walk(root)
	if obj, ok := root.(map[string]any); ok {
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			name, _ := json.Marshal(k)
			docs = append(docs, slices.Concat([]byte("{"), name, []byte(`: [[]], `), example[1:]))
		}
	}
	return docs
}

// TestValidate_exceptions shows each documented difference on one
// document, and that a document outside them must agree.
func TestValidate_exceptions(t *testing.T) {
	var ref reference
	for _, r := range references(t) {
		if r.et.RoutingKey() == "theboard.meeting.created" {
			ref = r
		}
	}
	example := string(ref.et.Example()) // max_rounds is an int
	withRounds := func(v string) []byte {
		return []byte(strings.Replace(example, `"max_rounds":5`, `"max_rounds":`+v, 1))
	}
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"an int", withRounds("5"), agreed},
		{"a fraction", withRounds("5.5"), agreed},
		{"a string", withRounds(`"5"`), agreed},
		{"an integral fraction", withRounds("5.0"), goInt},
		{"an exponent", withRounds("5e0"), goInt},
		{"beyond int64", withRounds("12345678901234567890"), goInt},
		{"a name twice, the first invalid", []byte(`{"max_rounds": "five", ` + example[1:]), duplicateNames},
		{"a name twice, the last invalid", []byte(strings.Replace(example, "}", `, "max_rounds": "five"}`, 1)), agreed},
	}
	for _, tt := range tests {
		if got := compare(t, ref, tt.payload); got != tt.want {
			t.Errorf("%s: %q, want %q\n%s", tt.name, got, tt.want, tt.payload)
		}
	}
}

// TestBusFormats_againstRFC3339 shows where the readers of the bus differ
// from JSON Schema's date-time (RFC 3339) and uuid (RFC 4122 text) formats:
// the one documented exception to the standard's formats.
func TestBusFormats_againstRFC3339(t *testing.T) {
	r := newCatalog(t)
	tests := []struct {
		key, field, value string
		bus, standard     bool
	}{
		{"fireflies.transcript.failed", "timestamp", "2026-01-29T10:00:00.123456Z", true, true},
		{"fireflies.transcript.failed", "timestamp", "2026-01-29T10:00:00.123456+00:00", true, true},
		{"fireflies.transcript.failed", "timestamp", "2026-01-29T10:00:00+02:00", true, true},
		{"fireflies.transcript.failed", "timestamp", "2026-01-29T10:00:00.123456", true, false}, // naive: UTC
		{"fireflies.transcript.failed", "timestamp", "2026-01-29 10:00:00.123456", true, false}, // Python's str(datetime)
		{"fireflies.transcript.failed", "timestamp", "2026-01-29", true, false},                 // Python's date.isoformat()
		{"fireflies.transcript.failed", "timestamp", "2026-01-29t10:00:00z", false, true},
		{"fireflies.transcript.failed", "timestamp", "2016-12-31T23:59:60Z", false, true}, // a leap second
		{"fireflies.transcript.failed", "timestamp", "yesterday", false, false},
		{"theboard.meeting.created", "meeting_id", "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11", true, true},
		{"theboard.meeting.created", "meeting_id", "0b6f1c9e3d554a579c572f7d0f0e6a11", true, false},
		{"theboard.meeting.created", "meeting_id", "{0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11}", true, false},
		{"theboard.meeting.created", "meeting_id", "urn:uuid:0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11", true, false},
		{"theboard.meeting.created", "meeting_id", "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a1", false, false},
	}
	for _, tt := range tests {
		et, err := r.LookupKey(tt.key)
		if err != nil {
			t.Fatal(err)
		}
		var example map[string]any
		if err := json.Unmarshal(et.Example(), &example); err != nil {
			t.Fatal(err)
		}
		example[tt.field] = tt.value
		payload, err := json.Marshal(example)
		if err != nil {
			t.Fatal(err)
		}
		bus := reference{et: et, schema: compileReference(t, et, busFormats)}.validate(payload) == nil
		standard := reference{et: et, schema: compileReference(t, et, nil)}.validate(payload) == nil
		if ours := et.Validate(payload) == nil; ours != bus || bus != tt.bus || standard != tt.standard {
			t.Errorf("%s %q: accepted by Validate %v, by the bus's readers %v, by the standard %v; want %v, %v, %v",
				tt.field, tt.value, ours, bus, standard, tt.bus, tt.bus, tt.standard)
		}
	}
}
