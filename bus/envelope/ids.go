package envelope

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Deterministic event ids (wire-contract section 5): Python computes
// uuid5(NAMESPACE_OID, "bloodbank:" + event_type + ":" + unique_key), where
// unique_key is the sorted "name=value" pairs, joined by "|", of str() values.

// IDNamespace is the UUID namespace of deterministic event ids: Python's
// uuid.NAMESPACE_OID (6ba7b812-9dad-11d1-80b4-00c04fd430c8).
var IDNamespace = uuid.NameSpaceOID

// ErrIDFieldValue is the error wrapped by an IDFieldError: a field value of a
// type whose Python str() rendering this package cannot reproduce exactly.
var ErrIDFieldValue = errors.New("value cannot be rendered exactly as Python's str() renders it")

// IDFieldError reports which identifying field could not be rendered.
type IDFieldError struct {
	Field string // the field name
	Type  string // the Go type of the value, e.g. "float32"
}

func (e *IDFieldError) Error() string {
	return fmt.Sprintf("cannot derive an event id from field %q of type %s: %v", e.Field, e.Type, ErrIDFieldValue)
}

// Unwrap makes errors.Is(err, ErrIDFieldValue) hold.
func (e *IDFieldError) Unwrap() error { return ErrIDFieldValue }

// DeterministicID returns the event id a Python service computes with
// generate_event_id(event_type, **fields), so that Go and Python producers of
// the same fact publish the same event_id.
//
// Values render as Python's str(): nil → None, pointers → their element,
// bool → True/False, integers and *big.Int → decimal, float64 → repr
// ("1.0", "1e+16", "inf"), strings as is, uuid.UUID canonical, json.Number
// as the number it spells. Anything else (float32, time.Time, structs, ...)
// is an *IDFieldError, not a guess that would silently change the id.
func DeterministicID(eventType string, fields map[string]any) (uuid.UUID, error) {
	key, err := UniqueKey(fields)
	if err != nil {
		return uuid.Nil, err
	}
	return DeterministicIDFromKey(eventType, key), nil
}

// DeterministicIDFromKey returns uuid5(NAMESPACE_OID,
// "bloodbank:"+eventType+":"+uniqueKey). It matches the Python tracker's
// generate_event_id(event_type, unique_key), which some Python producers call
// with a free-form key such as "meeting_abc123" instead of named fields.
func DeterministicIDFromKey(eventType, uniqueKey string) uuid.UUID {
	return uuid.NewSHA1(IDNamespace, []byte("bloodbank:"+eventType+":"+uniqueKey))
}

// UniqueKey renders fields as DeterministicID does. Sorting compares
// strings bytewise, which for UTF-8 is the code-point order Python's sorted
// uses.
func UniqueKey(fields map[string]any) (string, error) {
	pairs := make([]Field, 0, len(fields))
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		s, ok := pythonStr(fields[name])
		if !ok {
			return "", &IDFieldError{Field: name, Type: fmt.Sprintf("%T", fields[name])}
		}
		pairs = append(pairs, Field{name, s})
	}
	return joinFields(pairs), nil
}

// joinFields writes fields as "name=value" pairs joined by "|".
func joinFields(fields []Field) string {
	pairs := make([]string, len(fields))
	for i, f := range fields {
		pairs[i] = f.name + "=" + f.value
	}
	return strings.Join(pairs, "|")
}

// Field is one identifying field of a deterministic id, already rendered.
// Its constructors accept only types whose rendering is exact, so
// DeterministicIDOf cannot fail.
type Field struct {
	name, value string
}

// StrField is a string field, rendered as is.
func StrField(name, value string) Field { return Field{name, value} }

// IntField is an integer field, rendered in decimal.
func IntField(name string, value int64) Field { return Field{name, strconv.FormatInt(value, 10)} }

// BoolField is a boolean field, rendered True or False.
func BoolField(name string, value bool) Field { return Field{name, pythonBool(value)} }

// FloatField is a float field, rendered as Python's repr(float).
func FloatField(name string, value float64) Field { return Field{name, pythonFloat(value)} }

// UUIDField is a UUID field, rendered as Python's str(UUID).
func UUIDField(name string, value uuid.UUID) Field { return Field{name, value.String()} }

// NoneField is a field whose value is None (an optional field left unset).
func NoneField(name string) Field { return Field{name, "None"} }

// DeterministicIDOf is DeterministicID for fields built with the Field
// constructors. Giving the same name twice is a caller's mistake (Python
// keyword arguments cannot repeat); both pairs are kept, ordered by value as
// Python's sorted would order equal names.
func DeterministicIDOf(eventType string, fields ...Field) uuid.UUID {
	sorted := slices.Clone(fields)
	slices.SortFunc(sorted, func(a, b Field) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.value, b.value))
	})
	return DeterministicIDFromKey(eventType, joinFields(sorted))
}

// pythonStr renders v as Python's str() renders the equivalent value, or
// reports false when it cannot be sure of the exact rendering.
func pythonStr(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "None", true
	case uuid.UUID:
		return x.String(), true
	case *big.Int:
		if x == nil {
			return "None", true
		}
		return x.String(), true
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return strconv.FormatInt(i, 10), true
		}
		if bi, ok := new(big.Int).SetString(string(x), 10); ok {
			return bi.String(), true
		}
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return pythonFloat(f), true
		}
		return "", false
	}
	rv := reflect.ValueOf(v) // named types too (type MeetingID string)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return "None", true
		}
		return pythonStr(rv.Elem().Interface())
	case reflect.String:
		return rv.String(), true
	case reflect.Bool:
		return pythonBool(rv.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(rv.Uint(), 10), true
	case reflect.Float64:
		return pythonFloat(rv.Float()), true
	}
	// float32 is refused: Python has no float32, and whether the Python side
	// held 0.1 or float(numpy.float32(0.1)) decides the rendering.
	return "", false
}

func pythonBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// pythonFloat renders f as Python 3's repr(float) (which str(float) equals):
// the shortest digits that round-trip (Go and Python both pick the same
// ones), in positional form when the decimal exponent is between -4 and 16
// and in exponent form otherwise, with at least two exponent digits.
func pythonFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // "-1.2345e+17", "5e-324"
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	// Python's float_repr_style "short": decpt = exp+1; positional when
	// -4 < decpt <= 16.
	if decpt := exp + 1; decpt > -4 && decpt <= 16 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	// Python writes "1e+16": no ".0" in the mantissa, a sign and at least
	// two exponent digits, as Go's 'e' format does.
	return mant + "e" + expStr
}
