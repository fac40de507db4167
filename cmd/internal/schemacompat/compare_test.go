package schemacompat_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/33god/bloodbank-go/cmd/internal/schemacompat"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// base is shaped like the generated schemas: $defs, $ref, anyOf [X, null]
// for optional fields, nested objects and arrays.
const base = `{
  "$defs": {
    "Sentence": {
      "type": "object",
      "properties": {
        "speaker_id": {"type": "integer"},
        "text": {"type": "string"},
        "start": {"type": "integer"}
      },
      "required": ["speaker_id", "text"]
    }
  },
  "type": "object",
  "properties": {
    "id": {"type": "string", "format": "uuid"},
    "title": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "mood": {"type": "string", "enum": ["positive", "negative", "neutral"]},
    "score": {"type": "number"},
    "count": {"type": "integer"},
    "value": {"type": ["string", "integer"]},
    "note": {"type": "string"},
    "sentences": {"type": "array", "items": {"$ref": "#/$defs/Sentence"}},
    "meta": {"type": "object", "properties": {"source": {"type": "string"}}}
  },
  "required": ["id", "mood", "sentences"]
}`

func TestCompare_breaking(t *testing.T) {
	tests := []struct {
		name string
		old  string // "" for base
		new  string
		want []string
	}{
		{
			name: "changed type inside an array of $ref",
			new: `{"$defs": {"Sentence": {"type": "object", "properties": {"speaker_id": {"type": "string"}, "text": {"type": "string"}, "start": {"type": "integer"}}, "required": ["speaker_id", "text"]}},
			  "type": "object", "properties": {"sentences": {"type": "array", "items": {"$ref": "#/$defs/Sentence"}}}}`,
			want: []string{"k: payload.sentences[].speaker_id: type changed from integer to string"},
		},
		{
			name: "number narrowed to integer",
			new:  `{"type": "object", "properties": {"score": {"type": "integer"}}}`,
			want: []string{"k: payload.score: type changed from number to integer"},
		},
		{
			name: "type removed from a union",
			new:  `{"type": "object", "properties": {"value": {"type": "string"}}}`,
			want: []string{"k: payload.value: type integer no longer accepted (was string|integer, now string)"},
		},
		{
			name: "type removed from an anyOf union",
			old:  `{"type": "object", "properties": {"value": {"anyOf": [{"type": "string"}, {"type": "boolean"}]}}}`,
			new:  `{"type": "object", "properties": {"value": {"anyOf": [{"type": "string"}]}}}`,
			want: []string{"k: payload.value: type boolean no longer accepted (was string|boolean, now string)"},
		},
		{
			name: "any type constrained",
			old:  `{"type": "object", "properties": {"extra": {}}}`,
			new:  `{"type": "object", "properties": {"extra": {"type": "string"}}}`,
			want: []string{"k: payload.extra: type constrained from any to string"},
		},
		{
			name: "enum narrowed",
			new:  `{"type": "object", "properties": {"mood": {"type": "string", "enum": ["positive", "negative"]}}}`,
			want: []string{`k: payload.mood: enum narrowed: "neutral" removed`},
		},
		{
			name: "enum where there was none",
			new:  `{"type": "object", "properties": {"note": {"type": "string", "enum": ["a"]}}}`,
			want: []string{`k: payload.note: values restricted to ["a"]`},
		},
		{
			name: "nullable made non-nullable",
			new:  `{"type": "object", "properties": {"title": {"type": "string"}}}`,
			want: []string{"k: payload.title: made non-nullable: null is no longer accepted"},
		},
		{
			name: "optional made required",
			new:  `{"type": "object", "properties": {"note": {"type": "string"}, "sentences": {"type": "array"}}, "required": ["note"]}`,
			want: []string{"k: payload.note: made required (was optional)"},
		},
		{
			name: "new required field without a default",
			new:  `{"type": "object", "properties": {"lang": {"type": "string"}}, "required": ["lang"]}`,
			want: []string{"k: payload.lang: new required field without a default"},
		},
		{
			name: "nested new required field",
			new:  `{"type": "object", "properties": {"meta": {"type": "object", "properties": {"source": {"type": "string"}, "rev": {"type": "integer"}}, "required": ["rev"]}}}`,
			want: []string{"k: payload.meta.rev: new required field without a default"},
		},
		{
			name: "additionalProperties true to false",
			new:  `{"type": "object", "additionalProperties": false, "properties": {"id": {}, "title": {}, "mood": {}, "score": {}, "count": {}, "value": {}, "note": {}, "sentences": {}, "meta": {}}}`,
			want: []string{"k: payload: additionalProperties changed from true to false"},
		},
		{
			name: "field removed from a closed object",
			old:  `{"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}`,
			new:  `{"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}}}`,
			want: []string{"k: payload.b: field removed from an object that allows no additional properties"},
		},
		{
			name: "format added",
			new:  `{"type": "object", "properties": {"note": {"type": "string", "format": "email"}}}`,
			want: []string{`k: payload.note: format "email" added`},
		},
		{
			name: "format changed",
			new:  `{"type": "object", "properties": {"id": {"type": "string", "format": "date-time"}}}`,
			want: []string{`k: payload.id: format changed from "uuid" to "date-time"`},
		},
		{
			name: "bounds added and tightened",
			old:  `{"type": "object", "properties": {"n": {"type": "integer", "maximum": 10}}}`,
			new:  `{"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 5}}}`,
			want: []string{"k: payload.n: minimum 1 added", "k: payload.n: maximum tightened from 10 to 5"},
		},
		{
			name: "map values narrowed",
			old:  `{"type": "object", "properties": {"labels": {"type": "object", "additionalProperties": {"type": "number"}}}}`,
			new:  `{"type": "object", "properties": {"labels": {"type": "object", "additionalProperties": {"type": "integer"}}}}`,
			want: []string{"k: payload.labels.*: type changed from number to integer"},
		},
		{
			name: "array items changed",
			old:  `{"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}`,
			new:  `{"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "integer"}}}}`,
			want: []string{"k: payload.tags[]: type changed from string to integer"},
		},
		{
			name: "schema false",
			old:  `{"type": "object"}`,
			new:  `false`,
			want: []string{"k: payload: no value is accepted any more (schema false)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := tt.old
			if old == "" {
				old = base
			}
			got := compare(t, old, tt.new)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCompare_additive(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
	}{
		{"identical", base, base},
		{"new optional field", base, `{"type": "object", "properties": {"lang": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "extra": {"type": "integer"}}}`},
		{"new required field with a default", base, `{"type": "object", "properties": {"lang": {"type": "string", "default": "en"}}, "required": ["lang"]}`},
		{"enum widened", base, `{"type": "object", "properties": {"mood": {"type": "string", "enum": ["positive", "negative", "neutral", "mixed"]}}}`},
		{"enum dropped", base, `{"type": "object", "properties": {"mood": {"type": "string"}}}`},
		{"field made optional", base, `{"type": "object", "properties": {}, "required": ["id"]}`},
		{"field made nullable", base, `{"type": "object", "properties": {"note": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}`},
		{"integer widened to number", base, `{"type": "object", "properties": {"count": {"type": "number"}}}`},
		{"type added to a union", base, `{"type": "object", "properties": {"value": {"type": ["string", "integer", "boolean"]}}}`},
		{"format dropped", base, `{"type": "object", "properties": {"id": {"type": "string"}}}`},
		{"field removed from an open object", base, `{"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}}, "required": ["id"]}`},
		{"additionalProperties false to true", `{"type": "object", "additionalProperties": false}`, `{"type": "object", "additionalProperties": true}`},
		{"bounds relaxed", `{"type": "integer", "minimum": 1, "maximum": 5}`, `{"type": "integer", "minimum": 0}`},
		{"$ref inlined", base, `{"type": "object", "properties": {"sentences": {"type": "array", "items": {"type": "object", "properties": {"speaker_id": {"type": "number"}}}}}}`},
		{"inline moved to $defs", `{"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}}`,
			`{"$defs": {"A": {"type": "object", "properties": {"b": {"type": "string"}}}}, "type": "object", "properties": {"a": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}}}`},
		{"anything accepted", base, `true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compare(t, tt.old, tt.new); len(got) != 0 {
				t.Errorf("got breaking changes %q, want none", got)
			}
		})
	}
}

func TestCompare_recursiveRefs(t *testing.T) {
	node := func(childType string) string {
		return `{"$defs": {"Node": {"type": "object", "properties": {"v": {"type": "` + childType + `"},
		  "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
		  "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}}}},
		  "$ref": "#/$defs/Node"}`
	}
	if got := compare(t, node("integer"), node("number")); len(got) != 0 {
		t.Errorf("widening: got %q, want none", got)
	}
	got := compare(t, node("number"), node("integer"))
	want := []string{"k: payload.v: type changed from number to integer"}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestCompare_invalidSchema(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":       `{`,
		"not a schema":   `[1]`,
		"dangling $ref":  `{"properties": {"a": {"$ref": "#/$defs/Missing"}}}`,
		"remote $ref":    `{"properties": {"a": {"$ref": "https://example.com/a.json"}}}`,
		"ref cycle only": `{"$defs": {"A": {"$ref": "#/$defs/A"}}, "properties": {"a": {"$ref": "#/$defs/A"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := schemacompat.Compare("k", []byte(`{"properties": {"a": {}}}`), []byte(doc))
			if !errors.Is(err, schemacompat.ErrInvalidSchema) {
				t.Errorf("got %v, want ErrInvalidSchema", err)
			}
		})
	}
}

func TestCheck_removedAndAddedTypes(t *testing.T) {
	old := schemacompat.Snapshot{"a.gone": []byte(`{"type": "object"}`), "a.kept": []byte(`{"type": "integer"}`)}
	new := schemacompat.Snapshot{"a.kept": []byte(`{"type": "string"}`), "a.new": []byte(`{"type": "object"}`)}
	changes, err := schemacompat.Check(old, new)
	if err != nil {
		t.Fatal(err)
	}
	got := texts(changes)
	want := []string{
		"a.gone: type removed: the routing key is no longer registered",
		"a.kept: payload: type changed from integer to string",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestSnapshot_roundTripOfTheCatalogue(t *testing.T) {
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	snap := schemacompat.Take(reg)
	first, err := snap.Encode()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := schemacompat.Parse(first)
	if err != nil {
		t.Fatal(err)
	}
	second, err := parsed.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(second) {
		t.Error("encoding a parsed snapshot changed it")
	}
	if changes, err := schemacompat.Check(parsed, snap); err != nil || len(changes) != 0 {
		t.Errorf("the catalogue against itself: got %q, %v; want no changes", texts(changes), err)
	}
	if _, ok := parsed["fireflies.transcript.ready"]; !ok {
		t.Error("snapshot lacks fireflies.transcript.ready")
	}
}

func TestParse_rejectsNonSnapshots(t *testing.T) {
	for _, doc := range []string{`null`, `[]`, `{"k": 3}`, `not json`} {
		if _, err := schemacompat.Parse([]byte(doc)); !errors.Is(err, schemacompat.ErrInvalidSchema) {
			t.Errorf("Parse(%s): got %v, want ErrInvalidSchema", doc, err)
		}
	}
}

func compare(t *testing.T, old, new string) []string {
	t.Helper()
	changes, err := schemacompat.Compare("k", []byte(old), []byte(new))
	if err != nil {
		t.Fatal(err)
	}
	return texts(changes)
}

func texts(changes []schemacompat.Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.String()
	}
	return out
}
