package envelope

import (
	"encoding/json"
	"fmt"
	"reflect"

	jsonv2 "github.com/go-json-experiment/json"
)

// MarshalPayload encodes a payload value as New does (see the package doc's
// JSON section), with the defaults of `default` struct tags applied (see
// UnmarshalPayload). Use it wherever a payload is encoded outside New.
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
// reads it, applying `default` struct tags ("[]", "{}", JSON of the field's
// type, a string's text, "now") to members that are absent or null (see the
// domains package doc). Tags count on the payload struct and the structs it
// embeds only; one further down is an error. A repeated name's last value wins.
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
