package domains

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/invopop/jsonschema"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Enum is implemented by a typed string whose values are the only ones the
// contract allows (fireflies.Sentiment); the schema lists them. A typed string
// without it stays open, as where Python accepts any string (theboard's strategy).
type Enum interface {
	EnumValues() []string
}

var (
	enumType    = reflect.TypeFor[Enum]()
	uuidType    = reflect.TypeFor[uuid.UUID]()
	busTimeType = reflect.TypeFor[envelope.Time]()
	timeType    = reflect.TypeFor[time.Time]()
)

// DefaultNow, as a date-time field's `default` tag, defaults it to the time
// of decoding, as Python's default_factory=now.
const DefaultNow = "now"

// generateSchema reflects t by the rules of the package doc ("How a Go type
// becomes a schema").
func generateSchema(t reflect.Type, title, description string) (schema []byte, err error) {
	defer func() {
		// invopop/jsonschema panics on kinds JSON cannot carry (chan, func,
		// complex); a third-party type with such a field is a spec error.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: cannot generate a JSON Schema for %s: %v", ErrInvalidSpec, t, r)
		}
	}()
	r := &jsonschema.Reflector{
		Anonymous:                 true,
		AllowAdditionalProperties: true,
		ExpandedStruct:            true,
		Mapper:                    mapType,
	}
	s := r.ReflectFromType(t)
	s.Title = title
	s.Description = description
	fixer := schemaFixer{defs: s.Definitions, names: map[string]reflect.Type{}}
	if s.Required, err = fixer.fields(t, s); err != nil {
		return nil, err
	}
	if len(s.Definitions) == 0 {
		s.Definitions = nil
	}
	return json.MarshalIndent(s, "", "  ")
}

func mapType(t reflect.Type) *jsonschema.Schema {
	switch t {
	case uuidType:
		return &jsonschema.Schema{Type: "string", Format: "uuid"}
	case busTimeType:
		return &jsonschema.Schema{Type: "string", Format: "date-time"}
	}
	if t.Kind() == reflect.String && t.Implements(enumType) {
		s := &jsonschema.Schema{Type: "string"}
		for _, v := range reflect.Zero(t).Interface().(Enum).EnumValues() {
			s.Enum = append(s.Enum, v)
		}
		return s
	}
	return nil
}

// schemaFixer rewrites the required lists, nullability and defaults of the
// schemas invopop generated, walking the Go types alongside them.
type schemaFixer struct {
	defs  jsonschema.Definitions
	names map[string]reflect.Type // $defs name → the type it was generated from
}

func (f *schemaFixer) fields(t reflect.Type, s *jsonschema.Schema) ([]string, error) {
	var required []string
	for i := range t.NumField() {
		field := t.Field(i)
		name, opts, _ := strings.Cut(field.Tag.Get("json"), ",")
		if name == "-" || strings.HasPrefix(field.Tag.Get("jsonschema"), "-") {
			continue
		}
		if field.Anonymous && name == "" && deref(field.Type).Kind() == reflect.Struct {
			embedded, err := f.fields(deref(field.Type), s) // encoding/json flattens it
			if err != nil {
				return nil, err
			}
			required = append(required, embedded...)
			continue
		}
		if !field.IsExported() {
			continue
		}
		if name == "" {
			name = field.Name
		}
		prop, ok := s.Properties.Get(name)
		if !ok {
			continue
		}
		if err := f.nested(field.Type); err != nil {
			return nil, err
		}

		kind := field.Type.Kind()
		canBeNil := kind == reflect.Pointer || kind == reflect.Map || kind == reflect.Interface
		omitted := slices.ContainsFunc(strings.Split(opts, ","), func(o string) bool { return o == "omitempty" || o == "omitzero" })
		tag, hasDefault := field.Tag.Lookup("default")
		if hasDefault {
			if err := setDefault(prop, field, tag); err != nil {
				return nil, fmt.Errorf("cannot generate a JSON Schema for %s: %w", t, err)
			}
		}
		nullable := canBeNil && !hasDefault // Python rejects null for a defaulted field
		if nullable && (prop.Type != "" || prop.Ref != "" || prop.AnyOf != nil) {
			wrapped := &jsonschema.Schema{
				AnyOf:       []*jsonschema.Schema{prop, {Type: "null"}},
				Description: prop.Description,
				Default:     prop.Default,
			}
			prop.Description, prop.Default = "", nil
			s.Properties.Set(name, wrapped)
		}
		if !canBeNil && !hasDefault && !omitted {
			required = append(required, name)
		}
	}
	return required, nil
}

// nested fixes the $defs of the struct types a field refers to.
func (f *schemaFixer) nested(t reflect.Type) error {
	for slices.Contains([]reflect.Kind{reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map}, t.Kind()) {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.Name() == "" {
		return nil
	}
	def, ok := f.defs[t.Name()]
	if !ok {
		return nil // mapped to a scalar (envelope.Time, time.Time)
	}
	if seen, ok := f.names[t.Name()]; ok {
		if seen != t {
			return fmt.Errorf("%w: types %s and %s share the schema name %q; rename one", ErrInvalidSpec, seen, t, t.Name())
		}
		return nil
	}
	f.names[t.Name()] = t
	var err error
	def.Required, err = f.fields(t, def)
	return err
}

func setDefault(prop *jsonschema.Schema, field reflect.StructField, tag string) error {
	base := deref(field.Type)
	switch {
	case tag == DefaultNow && (base == busTimeType || base == timeType):
		if prop.Description == "" {
			prop.Description = "Defaults to the time the payload is decoded."
		}
		return nil
	case base.Kind() == reflect.String:
		prop.Default = tag
		return nil
	}
	// The default must be a value of the field's own type, or decode and
	// schema would disagree about it.
	if err := json.Unmarshal([]byte(tag), reflect.New(field.Type).Interface()); err != nil {
		return fmt.Errorf("%w: field %s: default %q is not a JSON %s: %v", ErrInvalidSpec, field.Name, tag, field.Type, err)
	}
	var v any
	if err := json.Unmarshal([]byte(tag), &v); err != nil {
		return fmt.Errorf("%w: field %s: default %q is not JSON: %v", ErrInvalidSpec, field.Name, tag, err)
	}
	prop.Default = v
	return nil
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
