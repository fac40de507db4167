package domains_test

import (
	"encoding/json"
	"testing"

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
