package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// readSource reads a flag value of the form TEXT, @FILE or - (stdin).
// flag names the flag in errors.
func (a *app) readSource(flag, value string) ([]byte, error) {
	switch {
	case value == "-":
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, usageErrorf("cannot read %s from stdin: %v", flag, err)
		}
		return b, nil
	case strings.HasPrefix(value, "@"):
		if value == "@" {
			return nil, usageErrorf("%s: no file name after @ (e.g. %s @payload.json)", flag, flag)
		}
		return readFile(flag, value[1:])
	default:
		return []byte(value), nil
	}
}

// readFile reads a file named by a flag.
func readFile(flag, path string) ([]byte, error) {
	if path == "" {
		return nil, usageErrorf("%s needs a file name (or - for stdin)", flag)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("cannot read %s file: %v (check the path)", flag, err)
	}
	return b, nil
}

// checkJSONObject reports, with its line and column, why b is not one JSON
// object.
func checkJSONObject(what string, b []byte) error {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return usageErrorf("%s is empty: want a JSON object such as {\"field\": \"value\"}", what)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var v any
	if err := dec.Decode(&v); err != nil {
		return usageErrorf("%s is not valid JSON: %s", what, describeJSONError(b, err, dec.InputOffset()))
	}
	if _, ok := v.(map[string]any); !ok {
		return usageErrorf("%s must be a JSON object ({...}), got %s", what, jsonKindOf(v))
	}
	if dec.More() {
		return usageErrorf("%s is not valid JSON: %s", what,
			describeJSONError(b, errors.New("unexpected data after the object"), dec.InputOffset()))
	}
	if _, err := dec.Token(); err != io.EOF {
		return usageErrorf("%s is not valid JSON: %s", what,
			describeJSONError(b, errors.New("unexpected data after the object"), dec.InputOffset()))
	}
	return nil
}

// describeJSONError places a decoding error at its line and column.
func describeJSONError(b []byte, err error, offset int64) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		offset = syn.Offset
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input (an unclosed { [ or \"?)"
	}
	// The decoder reports the offset after the offending byte; place the
	// column on that byte.
	line, col := 1, 1
	for _, c := range b[:max(0, min(int(offset)-1, len(b)))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

func jsonKindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}

// setTopLevelString returns the JSON object obj with field set to the
// string value, keeping the other members and their order unchanged.
func setTopLevelString(obj []byte, field, value string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	encoded := marshalString(value)
	var out bytes.Buffer
	out.WriteByte('{')
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		out.Write(marshalString(key))
		out.WriteByte(':')
		if key == field {
			out.Write(encoded)
			found = true
		} else {
			out.Write(raw)
		}
	}
	if !found {
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		out.Write(marshalString(field))
		out.WriteByte(':')
		out.Write(encoded)
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// marshalString encodes s as a JSON string without HTML escaping, as the
// envelope codec and Python's json.dumps write it.
func marshalString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimRight(buf.Bytes(), "\n")
}
