package domains_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/fireflies"
)

// BenchmarkValidate_TranscriptReady200 validates the largest payload on the
// bus, a transcript of 200 sentences (about 86 kB), as a validating
// middleware does for every delivery.
func BenchmarkValidate_TranscriptReady200(b *testing.B) {
	r := domains.NewRegistry()
	if err := fireflies.Register(r); err != nil {
		b.Fatal(err)
	}
	payload, err := json.Marshal(fireflies.SampleTranscriptReady(200))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Validate(fireflies.RoutingKeyTranscriptReady, payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate_TranscriptReady200_reference validates the same payload
// with santhosh-tekuri/jsonschema/v6, the reference validator, against the
// same schema: the price of a general-purpose validator on the bus.
func BenchmarkValidate_TranscriptReady200_reference(b *testing.B) {
	r := domains.NewRegistry()
	if err := fireflies.Register(r); err != nil {
		b.Fatal(err)
	}
	e, err := r.LookupKey(fireflies.RoutingKeyTranscriptReady)
	if err != nil {
		b.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Schema()))
	if err != nil {
		b.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		b.Fatal(err)
	}
	schema, err := c.Compile("schema.json")
	if err != nil {
		b.Fatal(err)
	}
	payload, err := json.Marshal(fireflies.SampleTranscriptReady(200))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		if err := schema.Validate(v); err != nil {
			b.Fatal(err)
		}
	}
}
