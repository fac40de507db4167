package domains

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Decode decodes a JSON object into a T as envelope.UnmarshalPayload does,
// applying T's `default` tags to absent or null members. It does not
// validate: call Registry.Validate first on a payload from outside.
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
