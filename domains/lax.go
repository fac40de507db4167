package domains

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Python consumers read payloads with Pydantic models in its default lax
// mode, which converts some values of the wrong JSON type instead of
// refusing them. Normalize does the same conversions, following Pydantic
// v2's conversion table for the types the catalogue uses, and writes the
// result in its proper JSON type, so that what a Go service accepts is what
// a Python one accepts, and what it passes on is canonical:
//
//	integer    a whole number (900.0), a string of digits ("900", " -1_000 ",
//	           "12.00"), a bool (1, 0); not 1.5, "1.5" or "abc"
//	number     a numeric string ("1.5", "2e3"), a bool (1, 0)
//	boolean    0 and 1 (also 0.0, 1.0); the strings 0/1, f/t, n/y, no/yes,
//	           off/on, false/true in any case; not 2 or "maybe"
//	string     nothing: a number is not a string, as in Pydantic
//	date-time  a Unix time in seconds, or milliseconds above 2e10, as a
//	           number or a numeric string, written as an RFC 3339 timestamp
//
// Enums, lists and optionals take no conversion of their own: their items
// and non-null values are converted as their types say.

// Normalize validates payload in Pydantic's lax mode and returns it in
// canonical form: the payload itself when it is valid as it is, or a copy
// with converted values. A payload that no conversion makes valid is a
// *ValidationError naming what is still wrong.
func (e *EventType) Normalize(payload []byte) ([]byte, error) {
	return normalize(e.root, payload, nil)
}

// Normalize is Validate in Pydantic's lax mode: it returns the payload in
// canonical form (see EventType.Normalize) or a *ValidationError.
func (r *Registry) Normalize(routingKey string, payload []byte) ([]byte, error) {
	e, err := r.LookupKey(routingKey)
	if err != nil {
		return nil, err
	}
	return normalize(e.root, payload, func(out []byte) []Problem {
		if e.IsTemplate() {
			return e.pattern.mismatches(routingKey, out)
		}
		return nil
	})
}

func normalize(n *node, payload []byte, more func([]byte) []Problem) ([]byte, error) {
	out := payload
	problems := validate(n, out)
	if problems != nil {
		if converted, ok := convert(n, payload); ok {
			out = converted
			problems = validate(n, out)
		}
	}
	if problems == nil && more != nil {
		problems = more(out)
	}
	if problems != nil {
		return nil, &ValidationError{Problems: problems}
	}
	return out, nil
}

// convert rewrites the values of payload that lax mode converts; false
// when payload is not JSON (validate says why).
func convert(n *node, payload []byte) ([]byte, bool) {
	var out bytes.Buffer
	c := converter{dec: jsontext.NewDecoder(bytes.NewReader(payload), decoderOptions...)}
	c.enc = jsontext.NewEncoder(&out, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if err := c.value(ref{node: n}); err != nil {
		return nil, false
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), true
}

type converter struct {
	dec *jsontext.Decoder
	enc *jsontext.Encoder
}

func (c *converter) value(r ref) error {
	n := r.node
	switch kind := c.dec.PeekKind(); {
	case kind == '{' && n.types&tObject != 0:
		return c.members(func(name string) *ref {
			if p := n.props[name]; p != nil {
				return &p.ref
			}
			return n.values
		})
	case kind == '[' && n.items != nil:
		return c.items(*n.items)
	default:
		v, err := c.dec.ReadValue()
		if err != nil {
			return err
		}
		if kind != '{' && kind != '[' && kind != 'n' {
			v = convertScalar(n, v)
		}
		return c.enc.WriteValue(v)
	}
}

func (c *converter) members(member func(name string) *ref) error {
	if err := c.copyToken(); err != nil { // {
		return err
	}
	for c.dec.PeekKind() != '}' {
		name, err := c.dec.ReadToken()
		if err != nil {
			return err
		}
		if err := c.enc.WriteToken(name); err != nil {
			return err
		}
		if r := member(name.String()); r != nil {
			err = c.value(*r)
		} else {
			err = c.copyValue()
		}
		if err != nil {
			return err
		}
	}
	return c.copyToken() // }
}

func (c *converter) items(r ref) error {
	if err := c.copyToken(); err != nil { // [
		return err
	}
	for c.dec.PeekKind() != ']' {
		if err := c.value(r); err != nil {
			return err
		}
	}
	return c.copyToken() // ]
}

func (c *converter) copyToken() error {
	t, err := c.dec.ReadToken()
	if err != nil {
		return err
	}
	return c.enc.WriteToken(t)
}

func (c *converter) copyValue() error {
	v, err := c.dec.ReadValue()
	if err != nil {
		return err
	}
	return c.enc.WriteValue(v)
}

// convertScalar returns v converted to what n expects, or v itself when it
// already fits or lax mode does not convert it.
func convertScalar(n *node, v jsontext.Value) jsontext.Value {
	kind := v.Kind()
	var s string // the text of a string value
	if kind == '"' {
		b, err := jsontext.AppendUnquote(nil, v)
		if err != nil {
			return v
		}
		s = string(b)
	}
	types := n.types
	switch {
	case types&tString != 0 && kind == '"':
		if n.format == formatDateTime {
			if _, err := envelope.ParseTimestamp(s); err != nil {
				if f, ok := parseFloat(s); ok {
					return quote(envelope.FormatTimestamp(unixTime(f)))
				}
			}
		}
	case types&tString != 0 && n.format == formatDateTime && kind == '0':
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			return quote(envelope.FormatTimestamp(unixTime(f)))
		}
	case types&tInteger != 0 && types&tNumber == 0:
		switch kind {
		case '0':
			if f, err := strconv.ParseFloat(string(v), 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 && !isIntegerLiteral(v) {
				return jsontext.Value(strconv.FormatInt(int64(f), 10))
			}
		case '"':
			if digits, ok := parseInt(s); ok {
				return jsontext.Value(digits)
			}
		case 't':
			return jsontext.Value("1")
		case 'f':
			return jsontext.Value("0")
		}
	case types&tNumber != 0:
		switch kind {
		case '"':
			if f, ok := parseFloat(s); ok {
				return jsontext.Value(formatFloat(f))
			}
		case 't':
			return jsontext.Value("1")
		case 'f':
			return jsontext.Value("0")
		}
	case types&tBoolean != 0:
		switch kind {
		case '0':
			if f, err := strconv.ParseFloat(string(v), 64); err == nil && (f == 0 || f == 1) {
				return jsontext.Value(strconv.FormatBool(f == 1))
			}
		case '"':
			switch strings.ToLower(strings.TrimSpace(s)) {
			case "0", "off", "f", "false", "n", "no":
				return jsontext.Value("false")
			case "1", "on", "t", "true", "y", "yes":
				return jsontext.Value("true")
			}
		}
	}
	return v
}

// intPattern is what Python's int() reads, plus the ".000" Pydantic strips.
var intPattern = regexp.MustCompile(`^([+-]?)([0-9]+(?:_[0-9]+)*)(?:\.0*)?$`)

func parseInt(s string) (string, bool) {
	m := intPattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", false
	}
	digits := strings.TrimLeft(strings.ReplaceAll(m[2], "_", ""), "0")
	if digits == "" {
		return "0", true
	}
	if m[1] == "-" {
		digits = "-" + digits
	}
	return digits, true
}

// floatPattern is a decimal number as Python's float() reads it, without
// inf and nan, which JSON cannot carry.
var floatPattern = regexp.MustCompile(`^[+-]?(?:[0-9]+(?:_[0-9]+)*(?:\.(?:[0-9]+(?:_[0-9]+)*)?)?|\.[0-9]+(?:_[0-9]+)*)(?:[eE][+-]?[0-9]+)?$`)

func parseFloat(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if !floatPattern.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	return f, err == nil && !math.IsInf(f, 0)
}

func formatFloat(f float64) string {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// isIntegerLiteral reports whether a JSON number has no fraction and no
// exponent, so it is an integer as it is written.
func isIntegerLiteral(v jsontext.Value) bool { return !bytes.ContainsAny(v, ".eE") }

// unixTime reads a Unix time as Pydantic does: seconds, or milliseconds
// when the number is above 2e10.
func unixTime(f float64) time.Time {
	if math.Abs(f) > 2e10 {
		f /= 1000
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC()
}

func quote(s string) jsontext.Value {
	v, _ := jsontext.AppendQuote(nil, s)
	return v
}
