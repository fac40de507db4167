package envelope

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// DefaultNow is the `default` tag value of a date-time field (Time or
// time.Time) that defaults to the time it is decoded or encoded at.
const DefaultNow = "now"

// defaults is what the `default` tags of one payload struct type ask for,
// worked out once per type (defaultsFor).
//
// Most defaults are applied by looking at the decoded value: a nil slice,
// map or pointer, or a zero Time, can only come from an absent or null
// member. A field with a meaningful zero (is_retryable: true, status: "ok")
// needs the JSON itself to tell false from "absent or null"; for those,
// presence is set and UnmarshalPayload reads the member names a second time.
type defaults struct {
	fields   []defaultField
	presence bool
}

type defaultField struct {
	index    []int
	name     string // the JSON member name
	typ      reflect.Type
	tag      string
	value    reflect.Value // the default of a field that is not a slice, map or pointer
	now      bool
	presence bool // the zero value is meaningful: absence is read from the JSON
}

type defaultsEntry struct {
	d   *defaults
	err error
}

var defaultsCache sync.Map // reflect.Type → defaultsEntry

var (
	timeType    = reflect.TypeFor[time.Time]()
	busTimeType = reflect.TypeFor[Time]()
)

// defaultsFor returns the defaults of t, or nil when t is not a struct or
// has none.
func defaultsFor(t reflect.Type) (*defaults, error) {
	if e, ok := defaultsCache.Load(t); ok {
		return e.(defaultsEntry).d, e.(defaultsEntry).err
	}
	d := &defaults{}
	var err error
	if t.Kind() == reflect.Struct {
		err = d.addFields(t, nil)
	}
	if len(d.fields) == 0 {
		d = nil
	}
	defaultsCache.Store(t, defaultsEntry{d, err})
	return d, err
}

// addFields adds the defaulted fields of struct t, at index within the
// payload, with those of embedded structs promoted as JSON promotes them.
func (d *defaults) addFields(t reflect.Type, index []int) error {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		idx := append(slices.Clone(index), i)
		switch {
		case tag == "-":
			continue
		case sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct:
			if err := d.addFields(sf.Type, idx); err != nil {
				return err
			}
			continue
		case !sf.IsExported():
			continue
		case name == "":
			name = sf.Name
		}
		if nested := nestedDefault(sf.Type, map[reflect.Type]bool{}); nested != "" {
			return fmt.Errorf("cannot apply the default of %s: defaults apply to a payload's own fields, not to %s.%s", nested, t, sf.Name)
		}
		def, ok := sf.Tag.Lookup("default")
		if !ok {
			continue
		}
		f, err := newDefaultField(sf, idx, name, def)
		if err != nil {
			return fmt.Errorf("cannot use the default of %s.%s: %w", t, sf.Name, err)
		}
		if f != nil {
			d.fields = append(d.fields, *f)
			d.presence = d.presence || f.presence
		}
	}
	return nil
}

// nestedDefault names a struct field with a `default` tag that a value of
// type t holds, or returns "".
func nestedDefault(t reflect.Type, seen map[reflect.Type]bool) string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return ""
	}
	seen[t] = true
	for i := range t.NumField() {
		sf := t.Field(i)
		if _, ok := sf.Tag.Lookup("default"); ok && sf.Tag.Get("json") != "-" {
			return t.String() + "." + sf.Name
		}
		if n := nestedDefault(sf.Type, seen); n != "" {
			return n
		}
	}
	return ""
}

// newDefaultField reads a `default` tag, or returns nil when the default
// is the field's zero value, which decoding gives anyway.
func newDefaultField(sf reflect.StructField, index []int, name, tag string) (*defaultField, error) {
	f := &defaultField{index: index, name: name, typ: sf.Type, tag: tag}
	base := sf.Type
	if base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	if tag == DefaultNow && (base == busTimeType || base == timeType) {
		f.now = true
		return f, nil
	}
	v := reflect.New(sf.Type)
	if err := f.decodeTag(v); err != nil {
		return nil, err
	}
	if v.Elem().IsZero() {
		return nil, nil
	}
	f.value = v.Elem()
	f.presence = !nilable(sf.Type)
	return f, nil
}

// decodeTag sets v, a pointer to a value of the field's type, to the
// default: the current time for "now", the text itself for a string or a
// pointer to one, JSON otherwise.
func (f *defaultField) decodeTag(v reflect.Value) error {
	e := v.Elem()
	if e.Kind() == reflect.Pointer && (f.now || e.Type().Elem().Kind() == reflect.String) {
		e.Set(reflect.New(e.Type().Elem()))
		e = e.Elem()
	}
	switch {
	case f.now && e.Type() == timeType:
		e.Set(reflect.ValueOf(Now().Time))
	case f.now:
		e.Set(reflect.ValueOf(Now()))
	case e.Kind() == reflect.String:
		e.SetString(f.tag)
	default:
		if err := jsonv2.Unmarshal([]byte(f.tag), v.Interface(), decodeOptions); err != nil {
			return fmt.Errorf("default %q is not a JSON %s: %w", f.tag, f.typ, err)
		}
	}
	return nil
}

func nilable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface:
		return true
	}
	return false
}

// fresh returns the default as a value of its own, so that no two payloads
// share a slice, map or pointer.
func (f *defaultField) fresh() reflect.Value {
	if !f.now && !nilable(f.typ) {
		return f.value
	}
	v := reflect.New(f.typ)
	_ = f.decodeTag(v) // newDefaultField decoded the same tag
	return v.Elem()
}

// unset reports whether a field value is written as the default when
// encoding: nil, a zero "now" Time, an empty string.
func (f *defaultField) unset(v reflect.Value) bool {
	switch {
	case nilable(f.typ):
		return v.IsNil()
	case f.now:
		return v.IsZero()
	case f.typ.Kind() == reflect.String:
		return v.Len() == 0
	}
	return false
}

// fillDecoded applies to v, a decoded payload, the defaults its values show
// to be missing: nil collections and pointers, zero "now" times.
func (d *defaults) fillDecoded(v reflect.Value) {
	for i := range d.fields {
		f := &d.fields[i]
		if fv := v.FieldByIndex(f.index); !f.presence && fv.IsZero() {
			fv.Set(f.fresh())
		}
	}
}

// fillAbsent applies to v the defaults whose field has a meaningful zero
// and whose member is absent or null (the last occurrence, as in decoding).
func (d *defaults) fillAbsent(data []byte, v reflect.Value) error {
	given := make([]bool, len(d.fields))
	dec := jsontext.NewDecoder(bytes.NewReader(data), decodeOptions)
	if dec.PeekKind() == '{' {
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return err
			}
			if i := slices.IndexFunc(d.fields, func(f defaultField) bool { return f.name == name.String() }); i >= 0 {
				given[i] = dec.PeekKind() != 'n'
			}
			if err := dec.SkipValue(); err != nil {
				return err
			}
		}
	}
	for i := range d.fields {
		if f := &d.fields[i]; f.presence && !given[i] {
			v.FieldByIndex(f.index).Set(f.fresh())
		}
	}
	return nil
}

// fillForEncode returns v with the defaults of its unset fields written in,
// and whether any was: a copy, so that the caller's value is left alone.
func (d *defaults) fillForEncode(v reflect.Value) (reflect.Value, bool) {
	var out reflect.Value
	for i := range d.fields {
		f := &d.fields[i]
		if !f.unset(v.FieldByIndex(f.index)) {
			continue
		}
		if !out.IsValid() {
			out = reflect.New(v.Type()).Elem()
			out.Set(v)
		}
		out.FieldByIndex(f.index).Set(f.fresh())
	}
	return out, out.IsValid()
}
