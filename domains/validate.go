package domains

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// rootPath names the payload in problem paths, from the envelope's point of view.
const rootPath = "payload"

// decoderOptions make jsontext accept the syntax encoding/json accepts, no
// more and no less: every Go reader of a payload decodes with encoding/json
// rules, which allow duplicate names and invalid UTF-8 inside strings.
var decoderOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// errTrailingData stops a walk that read one value and found another after it.
var errTrailingData = errors.New("trailing data after the payload")

// validate returns every problem of payload against n, in one decoder pass
// that reads values in place (see the package doc).
func validate(n *node, payload []byte) []Problem {
	v := validators.Get().(*validator)
	defer v.release()
	v.input = *bytes.NewBuffer(payload) // a bytes.Buffer is read in place, not copied
	v.dec.Reset(&v.input, decoderOptions...)
	err := v.value(ref{node: n})
	if err == nil {
		if _, err = v.dec.ReadToken(); err == nil {
			err = errTrailingData
		} else if err == io.EOF {
			err = nil
		}
	}
	if err != nil {
		return []Problem{{Path: rootPath, Message: "invalid JSON: " + syntaxError(payload)}}
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

// validators recycles decoders and their state stacks.
var validators = sync.Pool{New: func() any { return new(validator) }}

// validator walks one payload. A problem is located with dec.StackPointer
// when found, so a valid payload never builds a path.
type validator struct {
	dec      jsontext.Decoder
	input    bytes.Buffer
	unquoted []byte // scratch for strings with escapes
	problems []Problem
}

// release returns v to the pool without the payload or the problems, which
// now belong to the caller.
func (v *validator) release() {
	v.input = bytes.Buffer{}
	v.dec.Reset(&v.input)
	v.problems = nil
	validators.Put(v)
}

// report records a problem with the value just read, or with its member
// field when field is not empty.
func (v *validator) report(field, message string) {
	path := v.path()
	if field != "" {
		path += keyStep(field)
	}
	v.problems = append(v.problems, Problem{Path: path, Message: message})
}

// path spells the decoder's JSON Pointer to the value just read as the
// envelope's readers write it: payload.sentences[3].ai_filters.sentiment.
func (v *validator) path() string {
	var b strings.Builder
	b.WriteString(rootPath)
	level := 1
	for token := range v.dec.StackPointer().Tokens() {
		if kind, _ := v.dec.StackIndex(level); kind == '[' {
			b.WriteString("[" + token + "]")
		} else {
			b.WriteString(keyStep(token))
		}
		level++
	}
	return b.String()
}

// keyStep is .key, or ["key"] when the key would not read as one name.
func keyStep(key string) string {
	if isIdentifier(key) {
		return "." + key
	}
	return "[" + strconv.Quote(key) + "]"
}

// anyValue accepts every JSON value; values nobody described are skipped
// with it, which still checks their syntax.
var anyValue = ref{node: &node{}}

// value checks the next value against r; an error means malformed JSON.
func (v *validator) value(r ref) error {
	n := r.node
	want := n.types
	if r.nullable {
		want |= tNull
	}
	switch kind := v.dec.PeekKind(); kind {
	case '{', '[':
		got := tObject
		if kind == '[' {
			got = tArray
		}
		if n.types != 0 && !want.accepts(got) {
			if err := v.dec.SkipValue(); err != nil {
				return err
			}
			v.report("", fmt.Sprintf("expected %s, got %s", want, got))
			return nil
		}
		if n.free() {
			return v.dec.SkipValue()
		}
		if got == tObject {
			return v.object(n)
		}
		return v.array(n)
	case 0:
		_, err := v.dec.ReadToken() // the error PeekKind met
		return err
	default:
		raw, err := v.dec.ReadValue()
		if err != nil {
			return err
		}
		got := scalarType(kind, raw)
		switch {
		case n.types != 0 && !want.accepts(got):
			v.report("", fmt.Sprintf("expected %s, got %s", want, got))
		case got == tString:
			v.str(n, raw)
		case got == tInteger && n.types&tInteger != 0 && n.types&tNumber == 0 && len(raw) > 18:
			if _, err := strconv.ParseInt(string(raw), 10, 64); err != nil {
				v.report("", "integer out of range")
			}
		}
		return nil
	}
}

// scalarType tells an integer from a number the way encoding/json decides
// whether a number fits an int: no fraction and no exponent.
func scalarType(kind jsontext.Kind, raw jsontext.Value) typeSet {
	switch kind {
	case '"':
		return tString
	case 't', 'f':
		return tBoolean
	case 'n':
		return tNull
	}
	if bytes.ContainsAny(raw, ".eE") {
		return tNumber
	}
	return tInteger
}

func (v *validator) object(n *node) error {
	if _, err := v.dec.ReadToken(); err != nil { // '{'
		return err
	}
	var small [64]bool
	seen := small[:]
	if len(n.props) > len(small) {
		seen = make([]bool, len(n.props))
	}
	for v.dec.PeekKind() == '"' {
		name, err := v.dec.ReadValue()
		if err != nil {
			return err
		}
		key := v.unquote(name)
		switch p := n.props[string(key)]; {
		case p != nil:
			seen[p.index] = true
			err = v.value(p.ref)
		case n.values != nil:
			err = v.value(*n.values)
		default:
			if err = v.dec.SkipValue(); err == nil && n.closed {
				v.report("", "unexpected property")
			}
		}
		if err != nil {
			return err
		}
	}
	if _, err := v.dec.ReadToken(); err != nil { // '}', or the error PeekKind met
		return err
	}
	for _, p := range n.required {
		if !seen[p.index] {
			v.report(p.name, "required")
		}
	}
	return nil
}

func (v *validator) array(n *node) error {
	if _, err := v.dec.ReadToken(); err != nil { // '['
		return err
	}
	items := anyValue
	if n.items != nil {
		items = *n.items
	}
	for {
		switch v.dec.PeekKind() {
		case ']', 0:
			_, err := v.dec.ReadToken() // ']', or the error PeekKind met
			return err
		}
		if err := v.value(items); err != nil {
			return err
		}
	}
}

func (v *validator) str(n *node, raw jsontext.Value) {
	if n.enum == nil && n.format == formatNone {
		return
	}
	s := v.unquote(raw)
	if n.enum != nil && !slices.Contains(n.enum, string(s)) {
		v.report("", fmt.Sprintf("expected one of %s, got %s", quoteAll(n.enum), quoteValue(string(s))))
	}
	switch n.format {
	case formatUUID:
		if _, err := uuid.ParseBytes(s); err != nil {
			v.report("", "expected a UUID, got "+quoteValue(string(s)))
		}
	case formatDateTime:
		// The three forms seen on the bus (Z, +00:00, naive), as envelope.Time reads them.
		if _, err := envelope.ParseTimestamp(string(s)); err != nil {
			v.report("", "expected an ISO-8601 date-time, got "+quoteValue(string(s)))
		}
	}
}

// unquote returns the text of a JSON string, in place or, when it has
// escapes, in v's scratch buffer, valid until the next call.
func (v *validator) unquote(raw jsontext.Value) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	// The decoder checked the literal; an error here only reports invalid
	// UTF-8, which is replaced as encoding/json replaces it.
	v.unquoted, _ = jsontext.AppendUnquote(v.unquoted[:0], raw)
	return v.unquoted
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
