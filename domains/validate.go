package domains

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// rootPath names the payload in problem paths, from the envelope's point of view.
const rootPath = "payload"

// validate checks payload against the compiled schema n and returns every
// problem found. It is one pass over the bytes that checks the JSON syntax
// (as strictly as json.Valid) and the schema together, reading values in
// place: a valid payload costs no allocation beyond parsing its date-times.
func validate(n *node, payload []byte) []Problem {
	v := validator{data: payload}
	i := v.value(ref{node: n}, skipSpace(payload, 0))
	if i < 0 || skipSpace(payload, i) != len(payload) {
		return []Problem{{Path: rootPath, Message: "invalid JSON: " + syntaxError(payload)}}
	}
	for k := range v.problems {
		v.problems[k].Path = rootPath + v.problems[k].Path
	}
	return v.problems
}

// syntaxError lets encoding/json describe what is wrong, since it is what
// every Go reader of the payload will report.
func syntaxError(payload []byte) string {
	var discard json.RawMessage
	if err := json.Unmarshal(payload, &discard); err != nil {
		return err.Error()
	}
	return "malformed"
}

// maxDepth bounds nesting, as encoding/json does, so a hostile payload
// cannot grow the stack without limit.
const maxDepth = 10000

// anyValue accepts every JSON value; values nobody described are walked
// with it, which checks their syntax.
var anyValue = ref{node: &node{}}

// validator walks a payload. A problem's Path starts relative to the value
// that reports it and each enclosing object or array prepends its own step
// on the way out, so a valid payload never builds a path.
type validator struct {
	data     []byte
	problems []Problem
	depth    int
}

func (v *validator) report(message string) {
	v.problems = append(v.problems, Problem{Message: message})
}

func (v *validator) reportField(field, message string) {
	v.problems = append(v.problems, Problem{Path: keyStep(field), Message: message})
}

// prefix prepends a step to the paths of the problems reported since from.
func (v *validator) prefix(from int, step func() string) {
	if len(v.problems) == from {
		return
	}
	s := step()
	for k := from; k < len(v.problems); k++ {
		v.problems[k].Path = s + v.problems[k].Path
	}
}

// keyStep is .key, or ["key"] when the key would not read as one name.
func keyStep(key string) string {
	if isIdentifier(key) {
		return "." + key
	}
	return "[" + strconv.Quote(key) + "]"
}

// value checks the value starting at v.data[i] and returns the index just
// past it, or -1 when the JSON is malformed, which aborts the walk.
func (v *validator) value(r ref, i int) int {
	d := v.data
	if i >= len(d) {
		return -1
	}
	n := r.node
	var got typeSet
	end := -1 // set when the value was scanned to learn its type
	var overflow bool
	switch c := d[i]; {
	case c == '{':
		got = tObject
	case c == '[':
		got = tArray
	case c == '"':
		got = tString
	case c == 't':
		got, end = tBoolean, literal(d, i, "true")
	case c == 'f':
		got, end = tBoolean, literal(d, i, "false")
	case c == 'n':
		got, end = tNull, literal(d, i, "null")
	default:
		got, end, overflow = scanNumber(d, i)
	}
	if end < 0 && got != tObject && got != tArray && got != tString {
		return -1
	}
	want := n.types
	if r.nullable {
		want |= tNull
	}
	if n.types != 0 && !want.accepts(got) {
		v.report(fmt.Sprintf("expected %s, got %s", want, got))
		n = anyValue.node
	}
	switch got {
	case tObject:
		return v.object(n, i)
	case tArray:
		return v.array(n, i)
	case tString:
		return v.str(n, i)
	case tInteger:
		if overflow && n.types&tInteger != 0 && n.types&tNumber == 0 {
			v.report("integer out of range")
		}
	}
	return end
}

func (v *validator) object(n *node, i int) int {
	d := v.data
	if v.depth++; v.depth > maxDepth {
		return -1
	}
	var seen uint64 // bit p.index for the first 64 properties
	var seenMore []bool
	if n.nprops > 64 {
		seenMore = make([]bool, n.nprops)
	}
	i = skipSpace(d, i+1)
	if i < len(d) && d[i] == '}' {
		i++
	} else {
		for {
			if i >= len(d) || d[i] != '"' {
				return -1
			}
			end, escaped := scanString(d, i)
			if end < 0 {
				return -1
			}
			key := d[i+1 : end]
			if escaped {
				key = unquote(d[i : end+1])
			}
			if i = skipSpace(d, end+1); i >= len(d) || d[i] != ':' {
				return -1
			}
			i = skipSpace(d, i+1)
			switch p := n.props[string(key)]; {
			case p != nil:
				if p.index < 64 {
					seen |= 1 << p.index
				} else {
					seenMore[p.index] = true
				}
				from := len(v.problems)
				i = v.value(p.ref, i)
				v.prefix(from, func() string { return keyStep(p.name) })
			case n.values != nil:
				from := len(v.problems)
				i = v.value(*n.values, i)
				v.prefix(from, func() string { return keyStep(string(key)) })
			default:
				if n.closed {
					v.reportField(string(key), "unexpected property")
				}
				i = v.value(anyValue, i)
			}
			if i < 0 {
				return -1
			}
			if i = skipSpace(d, i); i >= len(d) {
				return -1
			}
			if d[i] == '}' {
				i++
				break
			}
			if d[i] != ',' {
				return -1
			}
			i = skipSpace(d, i+1)
		}
	}
	v.depth--
	for _, p := range n.required {
		if p.index < 64 && seen&(1<<p.index) == 0 || p.index >= 64 && !seenMore[p.index] {
			v.reportField(p.name, "required")
		}
	}
	return i
}

func (v *validator) array(n *node, i int) int {
	d := v.data
	if v.depth++; v.depth > maxDepth {
		return -1
	}
	items := anyValue
	if n.items != nil {
		items = *n.items
	}
	i = skipSpace(d, i+1)
	if i < len(d) && d[i] == ']' {
		v.depth--
		return i + 1
	}
	for index := 0; ; index++ {
		from := len(v.problems)
		i = v.value(items, i)
		v.prefix(from, func() string { return "[" + strconv.Itoa(index) + "]" })
		if i < 0 {
			return -1
		}
		if i = skipSpace(d, i); i >= len(d) {
			return -1
		}
		if d[i] == ']' {
			v.depth--
			return i + 1
		}
		if d[i] != ',' {
			return -1
		}
		i = skipSpace(d, i+1)
	}
}

func (v *validator) str(n *node, i int) int {
	end, escaped := scanString(v.data, i)
	if end < 0 {
		return -1
	}
	if n.enum == nil && n.format == formatNone {
		return end + 1
	}
	s := v.data[i+1 : end]
	if escaped {
		s = unquote(v.data[i : end+1])
	}
	if n.enum != nil && !containsBytes(n.enum, s) {
		v.report(fmt.Sprintf("expected one of %s, got %s", quoteAll(n.enum), quoteValue(string(s))))
	}
	switch n.format {
	case formatUUID:
		if _, err := uuid.ParseBytes(s); err != nil {
			v.report("expected a UUID, got " + quoteValue(string(s)))
		}
	case formatDateTime:
		// The three forms seen on the bus (Z, +00:00, naive), as envelope.Time reads them.
		if _, err := envelope.ParseTimestamp(string(s)); err != nil {
			v.report("expected an ISO-8601 date-time, got " + quoteValue(string(s)))
		}
	}
	return end + 1
}

func containsBytes(list []string, b []byte) bool {
	for _, s := range list {
		if s == string(b) {
			return true
		}
	}
	return false
}

// scanNumber reads a JSON number and tells an integer from a number the
// way encoding/json decides whether it fits an int: no fraction, no
// exponent, within int64. end is -1 when the number is malformed.
func scanNumber(d []byte, i int) (t typeSet, end int, overflow bool) {
	start := i
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = skipDigits(d, i)
	default:
		return tNumber, -1, false
	}
	t = tInteger
	if i < len(d) && d[i] == '.' {
		t = tNumber
		if j := skipDigits(d, i+1); j > i+1 {
			i = j
		} else {
			return tNumber, -1, false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		t = tNumber
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if j := skipDigits(d, i); j > i {
			i = j
		} else {
			return tNumber, -1, false
		}
	}
	if t == tInteger && i-start > 18 {
		if _, err := strconv.ParseInt(string(d[start:i]), 10, 64); err != nil {
			overflow = true
		}
	}
	return t, i, overflow
}

func skipDigits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}

func literal(d []byte, i int, word string) int {
	if bytes.HasPrefix(d[i:], []byte(word)) {
		return i + len(word)
	}
	return -1
}

// plain marks the bytes that may appear unescaped inside a JSON string.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString returns the index of the closing quote of the string starting
// at d[i] == '"' (-1 when it is malformed) and whether it has escapes.
func scanString(d []byte, i int) (end int, escaped bool) {
	j := i + 1
	for {
		for j < len(d) && plain[d[j]] {
			j++
		}
		if j >= len(d) || d[j] < 0x20 {
			return -1, false
		}
		if d[j] == '"' {
			return j, escaped
		}
		escaped = true // d[j] == '\\'
		if j+1 >= len(d) {
			return -1, false
		}
		switch d[j+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			j += 2
		case 'u':
			if j+6 > len(d) || !isHex4(d[j+2:j+6]) {
				return -1, false
			}
			j += 6
		default:
			return -1, false
		}
	}
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func skipSpace(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// unquote decodes a JSON string literal that has escapes; rare on the bus.
func unquote(lit []byte) []byte {
	var s string
	_ = json.Unmarshal(lit, &s) // scanString checked the literal
	return []byte(s)
}

func quoteAll(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strconv.Quote(v)
	}
	return strings.Join(quoted, ", ")
}

// quoteValue echoes a bad value back, cut short so that a huge string does
// not flood logs and problem lists.
func quoteValue(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(strings.ToValidUTF8(s[:limit], "")) + "…"
	}
	return strconv.Quote(s)
}
