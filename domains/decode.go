package domains

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Decode decodes a JSON payload into a T. The payload must be a JSON object.
// It decodes as envelope.UnmarshalPayload does, so a payload written by
// Python (explicit nulls, naive timestamps, absent defaulted fields) decodes
// as Python reads it: the `default` tags of T are applied to members that
// are absent or null. Decode does not validate: call Registry.Validate first
// when the payload comes from outside.
func Decode[T any](payload []byte) (T, error) {
	var v T
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return v, fmt.Errorf("cannot decode %s: the payload is not a JSON object", reflect.TypeFor[T]())
	}
	if err := envelope.UnmarshalPayload(payload, &v); err != nil {
		return v, fmt.Errorf("cannot decode %s: %w", reflect.TypeFor[T](), err)
	}
	return v, nil
}
