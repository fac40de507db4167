package catalog_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/agent/feedback"
	"github.com/33god/bloodbank-go/domains/fireflies"
	"github.com/33god/bloodbank-go/domains/github"
)

// decodedAt stands for "the time of decoding" in catalogDefaults.
var decodedAt = new(struct{})

// catalogDefaults is, for every catalogued type with `default` tags, the
// Go value Decode gives each defaulted field when its member is absent or
// null. A type that gains or loses a defaulted field fails
// TestCatalog_decodeAppliesEveryDefault until it is listed here.
var catalogDefaults = map[string]map[string]any{
	"agent.thread.prompt":            {"tags": []string{}},
	"agent.thread.error":             {"is_retryable": false, "retry_count": 0},
	"agent.feedback.requested":       {"tags": []string{}},
	"agent.feedback.response":        {"response": "", "status": feedback.StatusOK, "metadata": map[string]any{}},
	"fireflies.transcript.upload":    {"created_at": decodedAt},
	"fireflies.transcript.ready":     {"participants": []fireflies.MeetingParticipant{}, "speakers": []string{}},
	"fireflies.transcript.processed": {"chunk_count": 0, "metadata": map[string]any{}},
	"fireflies.transcript.failed":    {"timestamp": decodedAt, "retry_count": 0, "is_retryable": new(true), "metadata": map[string]any{}},
	"github.pr.created":              {"cache_type": github.CacheRedis},
	"artifact.{action}":              {"metadata": map[string]any{}},
	"artifact.ingestion.failed":      {"retry_count": 0, "is_retryable": new(true)},
	"llm.prompt":                     {"tags": []string{}},
	"llm.error":                      {"is_retryable": false, "retry_count": 0},
}

// TestCatalog_decodeAppliesEveryDefault decodes each catalogued example with
// all its defaulted members removed, then all of them null, and checks
// every defaulted field against catalogDefaults.
func TestCatalog_decodeAppliesEveryDefault(t *testing.T) {
	r := newCatalog(t)
	seen := map[string]bool{}
	for _, e := range r.Events(domains.Filter{}) {
		fields := defaultedFields(e.Type())
		want := catalogDefaults[e.RoutingKey()]
		if len(fields) == 0 && want == nil {
			continue
		}
		seen[e.RoutingKey()] = true
		names := make([]string, 0, len(fields))
		for name := range fields {
			names = append(names, name)
		}
		slices.Sort(names)
		for name := range want {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s: catalogDefaults lists %s, which has no default tag", e.RoutingKey(), name)
			}
		}
		for _, variant := range []string{"absent", "null"} {
			t.Run(e.RoutingKey()+"/"+variant, func(t *testing.T) {
				var payload map[string]json.RawMessage
				if err := json.Unmarshal(e.Example(), &payload); err != nil {
					t.Fatal(err)
				}
				for _, name := range names {
					if variant == "absent" {
						delete(payload, name)
					} else {
						payload[name] = json.RawMessage("null")
					}
				}
				b, _ := json.Marshal(payload)
				before := time.Now().Add(-time.Millisecond)
				v, err := e.Decode(b)
				if err != nil {
					t.Fatalf("Decode(%s) = %v", b, err)
				}
				rv := reflect.ValueOf(v)
				for _, name := range names {
					w, listed := want[name]
					if !listed {
						t.Errorf("%s is defaulted but not in catalogDefaults", name)
						continue
					}
					got := rv.FieldByIndex(fields[name]).Interface()
					if w == decodedAt {
						at, ok := got.(envelope.Time)
						if !ok || at.Before(before) || at.After(time.Now()) {
							t.Errorf("%s = %v, want the time of decoding", name, got)
						}
						continue
					}
					if !reflect.DeepEqual(got, w) {
						t.Errorf("%s = %#v, want %#v", name, got, w)
					}
				}
			})
		}
	}
	for key := range catalogDefaults {
		if !seen[key] {
			t.Errorf("catalogDefaults lists %s, which is not catalogued or has no defaults", key)
		}
	}
}

// defaultedFields maps the JSON name of every field of t with a `default`
// tag to its index.
func defaultedFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for _, f := range reflect.VisibleFields(t) {
		if _, ok := f.Tag.Lookup("default"); ok && f.IsExported() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			out[name] = f.Index
		}
	}
	return out
}
