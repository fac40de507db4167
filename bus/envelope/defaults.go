package envelope

import (
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

// A plan is what the `default` struct tags reachable from one Go type ask
// for, worked out once per type (planFor). A nil plan has nothing to do.
//
// Most defaults are applied by looking at the decoded value: a nil slice,
// map or pointer, or a zero Time, can only come from an absent or null
// member. A default whose field has a meaningful zero (is_retryable: true,
// status: "ok") needs the JSON itself to tell "false" from "absent or
// null"; such a plan has presence set, and UnmarshalPayload reads the
// payload a second time, token by token, for those fields only.
type plan struct {
	kind     reflect.Kind
	fields   []defaultField // a struct's fields with a default tag
	children []childPlan    // a struct's fields whose values reach defaults
	elem     *plan          // the element of a pointer, slice, array or map
	presence bool           // some default here or below needs the JSON
}

type childPlan struct {
	index []int
	name  string
	plan  *plan
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

type planEntry struct {
	plan *plan
	err  error
}

var plans sync.Map // reflect.Type → planEntry

var (
	timeType    = reflect.TypeFor[time.Time]()
	busTimeType = reflect.TypeFor[Time]()
)

// planFor returns the plan of t, building it on first use.
func planFor(t reflect.Type) (*plan, error) {
	if e, ok := plans.Load(t); ok {
		return e.(planEntry).plan, e.(planEntry).err
	}
	p, err := (&planBuilder{building: map[reflect.Type]*plan{}}).build(t)
	plans.Store(t, planEntry{p, err})
	return p, err
}

type planBuilder struct {
	// building holds the plans being built, so that a recursive type refers
	// to its own plan instead of recursing forever.
	building map[reflect.Type]*plan
}

func (b *planBuilder) build(t reflect.Type) (*plan, error) {
	if p, ok := b.building[t]; ok {
		return p, nil
	}
	if e, ok := plans.Load(t); ok {
		return e.(planEntry).plan, e.(planEntry).err
	}
	p := &plan{kind: t.Kind()}
	b.building[t] = p
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		elem, err := b.build(t.Elem())
		if err != nil || elem == nil {
			return nil, err
		}
		p.elem, p.presence = elem, elem.presence
	case reflect.Struct:
		if err := b.addFields(p, t, nil); err != nil {
			return nil, err
		}
		if len(p.fields) == 0 && len(p.children) == 0 {
			return nil, nil
		}
	default:
		return nil, nil
	}
	return p, nil
}

// addFields adds the fields of struct t, at index within the value the plan
// is for, with those of embedded structs promoted as JSON promotes them.
// An embedded struct pointer is left alone: filling it would write through
// a pointer the caller shares.
func (b *planBuilder) addFields(p *plan, t reflect.Type, index []int) error {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		idx := append(slices.Clone(index), i)
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			if err := b.addFields(p, sf.Type, idx); err != nil {
				return err
			}
			continue
		}
		if !sf.IsExported() || sf.Anonymous && name == "" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if def, ok := sf.Tag.Lookup("default"); ok {
			f, err := newDefaultField(sf, idx, name, def)
			if err != nil {
				return fmt.Errorf("cannot use the default of %s.%s: %w", t, sf.Name, err)
			}
			if f != nil {
				p.fields = append(p.fields, *f)
				p.presence = p.presence || f.presence
			}
		}
		child, err := b.build(sf.Type)
		if err != nil {
			return err
		}
		if child != nil {
			p.children = append(p.children, childPlan{index: idx, name: name, plan: child})
			p.presence = p.presence || child.presence
		}
	}
	return nil
}

// newDefaultField reads a `default` tag, or returns nil when the default
// is the field's zero value, which decoding gives anyway.
func newDefaultField(sf reflect.StructField, index []int, name, tag string) (*defaultField, error) {
	f := &defaultField{index: index, name: name, typ: sf.Type, tag: tag}
	base := sf.Type
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	if tag == DefaultNow && (base == busTimeType || base == timeType) {
		f.now = true
		return f, nil
	}
	v := reflect.New(sf.Type)
	if base.Kind() == reflect.String && sf.Type.Kind() == reflect.String {
		v.Elem().SetString(tag)
	} else if err := f.decodeTag(v); err != nil {
		return nil, err
	}
	if v.Elem().IsZero() {
		return nil, nil
	}
	f.value = v.Elem()
	f.presence = !nilable(sf.Type)
	return f, nil
}

// decodeTag decodes the tag into v, a pointer to a value of the field's
// type: the text itself for a string, JSON otherwise.
func (f *defaultField) decodeTag(v reflect.Value) error {
	if e := v.Elem(); e.Kind() == reflect.Pointer && e.Type().Elem().Kind() == reflect.String {
		e.Set(reflect.New(e.Type().Elem()))
		e.Elem().SetString(f.tag)
		return nil
	}
	if err := jsonv2.Unmarshal([]byte(f.tag), v.Interface(), decodeOptions); err != nil {
		return fmt.Errorf("default %q is not a JSON %s: %w", f.tag, f.typ, err)
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

// fresh returns the default as a value of its own, so that no two decoded
// values share a slice, map or pointer.
func (f *defaultField) fresh() reflect.Value {
	if f.now {
		now := reflect.ValueOf(Now())
		if f.typ == timeType || f.typ.Kind() == reflect.Pointer && f.typ.Elem() == timeType {
			now = reflect.ValueOf(Now().Time)
		}
		if f.typ.Kind() == reflect.Pointer {
			p := reflect.New(now.Type())
			p.Elem().Set(now)
			return p
		}
		return now
	}
	if !nilable(f.typ) {
		return f.value
	}
	switch {
	case f.typ.Kind() == reflect.Slice && f.value.Len() == 0:
		return reflect.MakeSlice(f.typ, 0, 0)
	case f.typ.Kind() == reflect.Map && f.value.Len() == 0:
		return reflect.MakeMap(f.typ)
	}
	v := reflect.New(f.typ)
	_ = f.decodeTag(v) // newDefaultField decoded the same tag
	return v.Elem()
}

// unsetForEncoding reports whether a field value stands for "not set" and
// is written as the default: a nil slice, map or pointer, a zero Time of a
// "now" default, an empty string with another default.
func (f *defaultField) unsetForEncoding(v reflect.Value) bool {
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

// fillDecoded applies the defaults that the decoded value shows to be
// missing: nil collections and pointers, zero "now" times.
func (p *plan) fillDecoded(v reflect.Value) {
	if p == nil {
		return
	}
	switch p.kind {
	case reflect.Pointer:
		if !v.IsNil() {
			p.elem.fillDecoded(v.Elem())
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			p.elem.fillDecoded(v.Index(i))
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			p.elem.fillDecoded(e)
			v.SetMapIndex(it.Key(), e)
		}
	case reflect.Struct:
		for i := range p.fields {
			f := &p.fields[i]
			if fv := v.FieldByIndex(f.index); !f.presence && fv.IsZero() {
				fv.Set(f.fresh())
			}
		}
		for _, c := range p.children {
			c.plan.fillDecoded(v.FieldByIndex(c.index))
		}
	}
}

// fillAbsent reads the JSON value v was decoded from and applies the
// defaults of fields whose member is absent or null and whose zero value
// is meaningful.
func (p *plan) fillAbsent(dec *jsontext.Decoder, v reflect.Value) error {
	if p == nil || !p.presence {
		return dec.SkipValue()
	}
	switch p.kind {
	case reflect.Pointer:
		if v.IsNil() {
			return dec.SkipValue()
		}
		return p.elem.fillAbsent(dec, v.Elem())
	case reflect.Slice, reflect.Array:
		if dec.PeekKind() != '[' {
			return dec.SkipValue()
		}
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for i := 0; dec.PeekKind() != ']'; i++ {
			var err error
			if i < v.Len() {
				err = p.elem.fillAbsent(dec, v.Index(i))
			} else {
				err = dec.SkipValue()
			}
			if err != nil {
				return err
			}
		}
		_, err := dec.ReadToken()
		return err
	case reflect.Map:
		return p.fillAbsentMap(dec, v)
	case reflect.Struct:
		return p.fillAbsentStruct(dec, v)
	}
	return dec.SkipValue()
}

func (p *plan) fillAbsentMap(dec *jsontext.Decoder, v reflect.Value) error {
	if dec.PeekKind() != '{' || v.Type().Key().Kind() != reflect.String {
		return dec.SkipValue()
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return err
		}
		key := reflect.ValueOf(name.String()).Convert(v.Type().Key())
		val := v.MapIndex(key)
		if !val.IsValid() {
			if err := dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		e := reflect.New(val.Type()).Elem()
		e.Set(val)
		if err := p.elem.fillAbsent(dec, e); err != nil {
			return err
		}
		v.SetMapIndex(key, e)
	}
	_, err := dec.ReadToken()
	return err
}

func (p *plan) fillAbsentStruct(dec *jsontext.Decoder, v reflect.Value) error {
	// given[i] is true when p.fields[i] had a member that was not null; a
	// repeated member counts as its last occurrence.
	given := make([]bool, len(p.fields))
	if dec.PeekKind() != '{' {
		if err := dec.SkipValue(); err != nil {
			return err
		}
	} else {
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return err
			}
			name := tok.String()
			if i := slices.IndexFunc(p.fields, func(f defaultField) bool { return f.name == name }); i >= 0 {
				given[i] = dec.PeekKind() != 'n'
			}
			if c := slices.IndexFunc(p.children, func(c childPlan) bool { return c.name == name }); c >= 0 {
				err = p.children[c].plan.fillAbsent(dec, v.FieldByIndex(p.children[c].index))
			} else {
				err = dec.SkipValue()
			}
			if err != nil {
				return err
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
	}
	for i := range p.fields {
		if f := &p.fields[i]; f.presence && !given[i] {
			v.FieldByIndex(f.index).Set(f.fresh())
		}
	}
	return nil
}

// fillForEncode returns v with the defaults of unset fields written in, and
// whether it changed anything. v itself is never modified: what changes is
// copied first.
func (p *plan) fillForEncode(v reflect.Value) (reflect.Value, bool) {
	if p == nil {
		return v, false
	}
	switch p.kind {
	case reflect.Pointer:
		if v.IsNil() {
			return v, false
		}
		e, changed := p.elem.fillForEncode(v.Elem())
		if !changed {
			return v, false
		}
		np := reflect.New(e.Type())
		np.Elem().Set(e)
		return np, true
	case reflect.Slice, reflect.Array:
		var out reflect.Value
		for i := range v.Len() {
			e, changed := p.elem.fillForEncode(v.Index(i))
			if !changed {
				continue
			}
			if !out.IsValid() {
				out = cloneValue(v)
			}
			out.Index(i).Set(e)
		}
		return orValue(out, v)
	case reflect.Map:
		var out reflect.Value
		for it := v.MapRange(); it.Next(); {
			if e, changed := p.elem.fillForEncode(it.Value()); changed {
				if !out.IsValid() {
					out = cloneValue(v)
				}
				out.SetMapIndex(it.Key(), e)
			}
		}
		return orValue(out, v)
	case reflect.Struct:
		var out reflect.Value
		for i := range p.fields {
			f := &p.fields[i]
			if f.unsetForEncoding(v.FieldByIndex(f.index)) {
				if !out.IsValid() {
					out = cloneValue(v)
				}
				out.FieldByIndex(f.index).Set(f.fresh())
			}
		}
		for _, c := range p.children {
			cur := v
			if out.IsValid() {
				cur = out
			}
			if e, changed := c.plan.fillForEncode(cur.FieldByIndex(c.index)); changed {
				if !out.IsValid() {
					out = cloneValue(v)
				}
				out.FieldByIndex(c.index).Set(e)
			}
		}
		return orValue(out, v)
	}
	return v, false
}

// cloneValue returns a settable shallow copy of v.
func cloneValue(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Slice:
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(out, v)
		return out
	case reflect.Map:
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), it.Value())
		}
		return out
	}
	out := reflect.New(v.Type()).Elem()
	out.Set(v)
	return out
}

func orValue(out, v reflect.Value) (reflect.Value, bool) {
	if out.IsValid() {
		return out, true
	}
	return v, false
}
