// Package jsonnumber holds the encoding/json/v2 options that carry numbers
// through Go's any values exactly, as Python's json module does: an integer
// written by Python comes back as the same digits, not a float64.
package jsonnumber

import (
	stdjson "encoding/json"
	"errors"
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Write is a marshal option that writes an encoding/json Number as the
// number it spells, as encoding/json does; encoding/json/v2 would quote it.
// An empty Number is written as 0.
var Write = json.WithMarshalers(json.MarshalToFunc(func(enc *jsontext.Encoder, n stdjson.Number) error {
	v := jsontext.Value(n)
	if len(v) == 0 {
		v = jsontext.Value("0")
	}
	if v.Kind() != '0' {
		return fmt.Errorf("json.Number %q is not a number", string(n))
	}
	return enc.WriteValue(v)
}))

// Read is an unmarshal option that reads a number into an any as an
// encoding/json Number, keeping its digits.
var Read = json.WithUnmarshalers(json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *any) error {
	if dec.PeekKind() != '0' {
		return errors.ErrUnsupported // not a number: decoded as usual
	}
	num, err := dec.ReadValue()
	if err != nil {
		return err
	}
	*v = stdjson.Number(num)
	return nil
}))
