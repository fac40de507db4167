package envelope

import (
	"encoding/json"
	"fmt"
	"reflect"

	jsonv2 "github.com/go-json-experiment/json"
)

// MarshalPayload encodes a payload value as the bus writes it: compact
// JSON, <, > and & as they are, map keys sorted, null for nil pointers,
// slices and maps, and the defaults of `default` struct tags applied (see
// UnmarshalPayload). New encodes payloads with it; use it wherever a
// payload is encoded outside New, so that both write the same bytes.
func MarshalPayload(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.IsValid() {
		d, err := defaultsFor(rv.Type())
		if err != nil {
			return nil, err
		}
		if d != nil {
			if filled, ok := d.fillForEncode(rv); ok {
				v = filled.Addr().Interface()
			}
		}
	}
	return jsonv2.Marshal(v, encodeOptions)
}

// UnmarshalPayload decodes a payload into v, a non-nil pointer, as Python
// reads it, and applies the defaults that `default` struct tags declare to
// members that are absent or null:
//
//	`default:"[]"`, `default:"{}"`      an empty slice or map
//	`default:"true"`, `default:"0"`     any JSON of the field's type
//	`default:"ok"`                      the text itself, for a string field
//	`default:"now"`                     the time of decoding, for a Time
//
// Encoding (MarshalPayload, New) writes a nil slice or map of a defaulted
// field as its default, an empty string as its default, and a zero Time
// with default "now" as the time of encoding, since Python rejects null
// for a defaulted field. Defaults apply to the payload struct's own fields
// and those of structs it embeds; a type with a `default` tag further down
// is refused with an error.
//
// Member names match exactly, as in Python; a repeated name is accepted
// and the last one wins.
func UnmarshalPayload(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("cannot decode a payload into %T: want a non-nil pointer", v)
	}
	if err := jsonv2.Unmarshal(data, v, decodeOptions); err != nil {
		return err
	}
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	d, err := defaultsFor(rv.Type())
	if d == nil || err != nil {
		return err
	}
	d.fillDecoded(rv)
	if d.presence {
		return d.fillAbsent(data, rv)
	}
	return nil
}

// DecodePayload decodes an envelope's payload into a T with UnmarshalPayload.
func DecodePayload[T any](e Envelope) (T, error) {
	var v T
	if err := UnmarshalPayload(e.Payload, &v); err != nil {
		return v, fmt.Errorf("cannot decode %s payload into %T: %w", e.EventType, v, err)
	}
	return v, nil
}

// encodePayload is New's payload: raw JSON as it is, any other value
// through MarshalPayload.
func encodePayload(payload any) (json.RawMessage, error) {
	switch p := payload.(type) {
	case json.RawMessage:
		return p, nil
	case []byte:
		return json.RawMessage(p), nil
	}
	return MarshalPayload(payload)
}
