package catalog_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// TestPayloadDecode_segmentioSameAsEncodingJSON holds the promise behind
// decoding payloads with segmentio/encoding/json (envelope.DecodePayload,
// domains.Decode, the types' UnmarshalJSON): for every catalogued type it
// decodes what encoding/json decodes, to the same value, and fails where
// encoding/json fails. The inputs are each example, the example with every
// field null, with every field removed, with keys in other cases, and
// broken variants.
func TestPayloadDecode_segmentioSameAsEncodingJSON(t *testing.T) {
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	defer func() { t.Logf("%d decodes compared", compared) }()
	for _, et := range reg.Events(domains.Filter{}) {
		for name, payload := range variants(t, et.Example()) {
			std := reflect.New(et.Type())
			stdErr := json.Unmarshal(payload, std.Interface())
			seg := reflect.New(et.Type())
			segErr := segjson.Unmarshal(payload, seg.Interface())
			if (stdErr == nil) != (segErr == nil) {
				t.Errorf("%s %s: encoding/json error %v, segmentio error %v\n%s", et.Name(), name, stdErr, segErr, payload)
				continue
			}
			if stdErr != nil {
				continue
			}
			compared++
			clearDecodeTimes(std.Elem(), seg.Elem())
			if !reflect.DeepEqual(std.Interface(), seg.Interface()) {
				t.Errorf("%s %s: decodes differ\nencoding/json %+v\nsegmentio     %+v\n%s", et.Name(), name, std.Elem(), seg.Elem(), payload)
			}
		}
	}
}

func variants(t *testing.T, example []byte) map[string][]byte {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(example, &obj); err != nil {
		t.Fatalf("example %s: %v", example, err)
	}
	out := map[string][]byte{"example": example}
	nulls := map[string]json.RawMessage{}
	upper := map[string]json.RawMessage{}
	for k, v := range obj {
		nulls[k] = json.RawMessage("null")
		upper[strings.ToUpper(k)] = v
	}
	for name, m := range map[string]map[string]json.RawMessage{"nulls": nulls, "uppercase keys": upper} {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	out["empty object"] = []byte(`{}`)
	out["spaced"] = []byte(" \n" + string(example) + "\t ")
	out["truncated"] = example[:len(example)-1]
	out["trailing garbage"] = append(append([]byte{}, example...), '}')
	out["array"] = []byte(`[]`)
	out["null"] = []byte(`null`)
	for k := range obj {
		wrong := map[string]json.RawMessage{}
		for k2, v := range obj {
			wrong[k2] = v
		}
		wrong[k] = json.RawMessage(`{"not":"the type"}`)
		b, _ := json.Marshal(wrong)
		out["wrong type for "+k] = b
	}
	return out
}

// clearDecodeTimes zeroes time fields equal to within a second: types that
// default a timestamp stamp it when decoded, and the two decodes run at
// different instants.
func clearDecodeTimes(a, b reflect.Value) {
	if a.Kind() != reflect.Struct {
		return
	}
	for i := range a.NumField() {
		fa, fb := a.Field(i), b.Field(i)
		if !fa.CanSet() {
			continue
		}
		if ta, ok := fa.Interface().(interface{ UnixNano() int64 }); ok {
			d := time.Duration(ta.UnixNano() - fb.Interface().(interface{ UnixNano() int64 }).UnixNano())
			if d > -time.Second && d < time.Second {
				fa.Set(reflect.Zero(fa.Type()))
				fb.Set(reflect.Zero(fb.Type()))
			}
		}
	}
}
