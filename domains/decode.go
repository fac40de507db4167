package domains

import (
	"bytes"
	"fmt"
	"reflect"

	segjson "github.com/segmentio/encoding/json"
)

// Decode decodes a JSON payload into a T. The payload must be a JSON object;
// the type's own UnmarshalJSON applies its defaults, so a payload written by
// Python (explicit nulls, naive timestamps) decodes as Python reads it.
// Decode does not validate: call Registry.Validate first when the payload
// comes from outside.
func Decode[T any](payload []byte) (T, error) {
	var v T
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return v, fmt.Errorf("cannot decode %s: the payload is not a JSON object", reflect.TypeFor[T]())
	}
	if err := segjson.Unmarshal(payload, &v); err != nil {
		return v, fmt.Errorf("cannot decode %s: %w", reflect.TypeFor[T](), err)
	}
	return v, nil
}
