package catalog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
)

func newCatalog(t testing.TB) *domains.Registry {
	t.Helper()
	r, err := catalog.New()
	if err != nil {
		t.Fatalf("catalog.New() = %v", err)
	}
	return r
}

// Every routing key of wire contract section 6, spelled out so that a
// missing or renamed registration fails here.
var wireContract = []struct {
	key, domain string
	kind        domains.Kind
	result      string
	name, alias string
}{
	{"fireflies.transcript.upload", "fireflies", domains.Fact, "", "fireflies.TranscriptUpload", "FirefliesTranscriptUploadPayload"},
	{"fireflies.transcript.ready", "fireflies", domains.Fact, "", "fireflies.TranscriptReady", "FirefliesTranscriptReadyPayload"},
	{"fireflies.transcript.processed", "fireflies", domains.Fact, "", "fireflies.TranscriptProcessed", "FirefliesTranscriptProcessedPayload"},
	{"fireflies.transcript.failed", "fireflies", domains.Fact, "", "fireflies.TranscriptFailed", "FirefliesTranscriptFailedPayload"},
	{"agent.thread.prompt", "agent/thread", domains.Command, "agent.thread.response", "thread.Prompt", "AgentThreadPrompt"},
	{"agent.thread.response", "agent/thread", domains.Fact, "", "thread.Response", "AgentThreadResponse"},
	{"agent.thread.error", "agent/thread", domains.Fact, "", "thread.ErrorPayload", "AgentThreadErrorPayload"},
	{"agent.feedback.requested", "agent/feedback", domains.Fact, "", "feedback.Requested", "AgentFeedbackRequested"},
	{"agent.feedback.response", "agent/feedback", domains.Fact, "", "feedback.Response", "AgentFeedbackResponse"},
	{"github.pr.created", "github", domains.Fact, "", "github.PRCreated", "GitHubPRCreatedPayload"},
	{"llm.prompt", "llm", domains.Fact, "", "llm.Prompt", "LLMPrompt"}, // a plain model in Python, executed by nothing
	{"llm.response", "llm", domains.Fact, "", "llm.Response", "LLMResponse"},
	{"llm.error", "llm", domains.Fact, "", "llm.ErrorPayload", "LLMErrorPayload"},
	{"artifact.created", "artifact", domains.Fact, "", "artifact.Changed", "Artifact"},
	{"artifact.updated", "artifact", domains.Fact, "", "artifact.Changed", "Artifact"},
	{"artifact.deleted", "artifact", domains.Fact, "", "artifact.Changed", "Artifact"},
	{"artifact.ingestion.failed", "artifact", domains.Fact, "", "artifact.IngestionFailed", "ArtifactIngestionFailedPayload"},
	{"theboard.meeting.created", "theboard", domains.Fact, "", "theboard.MeetingCreated", "MeetingCreatedPayload"},
	{"theboard.meeting.started", "theboard", domains.Fact, "", "theboard.MeetingStarted", "MeetingStartedPayload"},
	{"theboard.meeting.round_completed", "theboard", domains.Fact, "", "theboard.RoundCompleted", "RoundCompletedPayload"},
	{"theboard.meeting.comment_extracted", "theboard", domains.Fact, "", "theboard.CommentExtracted", "CommentExtractedPayload"},
	{"theboard.meeting.converged", "theboard", domains.Fact, "", "theboard.MeetingConverged", "MeetingConvergedPayload"},
	{"theboard.meeting.completed", "theboard", domains.Fact, "", "theboard.MeetingCompleted", "MeetingCompletedPayload"},
	{"theboard.meeting.failed", "theboard", domains.Fact, "", "theboard.MeetingFailed", "MeetingFailedPayload"},
	{"theboard.meeting.participant.added", "theboard", domains.Fact, "", "theboard.ParticipantAdded", "ParticipantAddedPayload"},
	{"theboard.meeting.participant.turn.completed", "theboard", domains.Fact, "", "theboard.ParticipantTurnCompleted", "ParticipantTurnCompletedPayload"},
}

func TestCatalog_registersEveryWireContractRoutingKey(t *testing.T) {
	r := newCatalog(t)
	for _, want := range wireContract {
		t.Run(want.key, func(t *testing.T) {
			e, err := r.LookupKey(want.key)
			if err != nil {
				t.Fatalf("LookupKey = %v", err)
			}
			got := fmt.Sprint(e.Domain(), e.Kind(), e.Result(), e.Name(), e.Aliases())
			if exp := fmt.Sprint(want.domain, want.kind, want.result, want.name, []string{want.alias}); got != exp {
				t.Errorf("domain kind result name aliases = %s, want %s", got, exp)
			}
			for _, name := range []string{want.name, want.alias} {
				if byName, err := r.Lookup(name); err != nil || byName != e {
					t.Errorf("Lookup(%q) = %v, %v; want the %s type", name, byName, err, want.key)
				}
			}
		})
	}
	// And nothing beyond the contract.
	var registered, contract []string
	for _, e := range r.Events(domains.Filter{}) {
		registered = append(registered, e.RoutingKeys()...)
	}
	for _, want := range wireContract {
		contract = append(contract, want.key)
	}
	slices.Sort(registered)
	slices.Sort(contract)
	if !slices.Equal(registered, contract) {
		t.Errorf("registered keys:\n %q\nwant\n %q", registered, contract)
	}
}

func TestCatalog_listsDomainsEventsAndCommands(t *testing.T) {
	r := newCatalog(t)
	if got, want := r.Domains(), []string{"agent/feedback", "agent/thread", "artifact", "fireflies", "github", "llm", "theboard"}; !slices.Equal(got, want) {
		t.Errorf("Domains() = %q, want %q", got, want)
	}
	tests := []struct {
		filter domains.Filter
		want   []string
	}{
		{domains.Filter{Kind: domains.Command}, []string{"agent.thread.prompt"}},
		{domains.Filter{Domain: "agent/feedback", Kind: domains.Command}, nil},
		{domains.Filter{Domain: "agent"}, []string{"agent.feedback.requested", "agent.feedback.response", "agent.thread.error", "agent.thread.prompt", "agent.thread.response"}},
		{domains.Filter{Domain: "artifact"}, []string{"artifact.ingestion.failed", "artifact.{action}"}},
		{domains.Filter{Domain: "fireflies", Kind: domains.Fact}, []string{"fireflies.transcript.failed", "fireflies.transcript.processed", "fireflies.transcript.ready", "fireflies.transcript.upload"}},
	}
	for _, tt := range tests {
		var got []string
		for _, e := range r.Events(tt.filter) {
			got = append(got, e.RoutingKey())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Events(%+v) = %q, want %q", tt.filter, got, tt.want)
		}
	}
}

func TestCatalog_commandResultsAreRegisteredFacts(t *testing.T) {
	r := newCatalog(t)
	for _, cmd := range r.Events(domains.Filter{Kind: domains.Command}) {
		result, err := r.LookupKey(cmd.Result())
		if err != nil || result.Kind() != domains.Fact {
			t.Errorf("%s: result %q: %v, want a registered fact", cmd.RoutingKey(), cmd.Result(), err)
		}
	}
}

func TestCatalog_examplesValidateAndDecode(t *testing.T) {
	r := newCatalog(t)
	for _, e := range r.Events(domains.Filter{}) {
		t.Run(e.RoutingKey(), func(t *testing.T) {
			example := e.Example()
			key, err := e.ResolveRoutingKey(example)
			if err != nil {
				t.Fatalf("ResolveRoutingKey(example) = %v", err)
			}
			if err := r.Validate(key, example); err != nil {
				t.Errorf("Validate(%s, example) = %v", key, err)
			}
			v, err := e.Decode(example)
			if err != nil {
				t.Fatalf("Decode(example) = %v", err)
			}
			if reflect.TypeOf(v) != e.Type() {
				t.Errorf("Decode returned %T, want %s", v, e.Type())
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, again, example) {
				t.Errorf("decode and re-encode changed the example:\n got %s\nwant %s", again, example)
			}
		})
	}
}

// TestCatalog_schemasAreStandardDraft202012 checks the generated schemas
// with an independent validator, so that tools other than ours (Python's
// jsonschema, editors) read them as we do.
func TestCatalog_schemasAreStandardDraft202012(t *testing.T) {
	r := newCatalog(t)
	for _, e := range r.Events(domains.Filter{}) {
		t.Run(e.RoutingKey(), func(t *testing.T) {
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Schema()))
			if err != nil {
				t.Fatal(err)
			}
			c := jsonschema.NewCompiler()
			c.DefaultDraft(jsonschema.Draft2020)
			if err := c.AddResource("schema.json", doc); err != nil {
				t.Fatal(err)
			}
			schema, err := c.Compile("schema.json")
			if err != nil {
				t.Fatalf("the schema does not compile as draft 2020-12: %v", err)
			}
			example, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Example()))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(example); err != nil {
				t.Errorf("santhosh-tekuri/jsonschema rejects the example: %v", err)
			}
		})
	}
}

func TestCatalog_removingARequiredFieldIsReported(t *testing.T) {
	r := newCatalog(t)
	for _, e := range r.Events(domains.Filter{}) {
		var schema map[string]any
		if err := json.Unmarshal(e.Schema(), &schema); err != nil {
			t.Fatal(err)
		}
		defs, _ := schema["$defs"].(map[string]any)
		key, _ := e.ResolveRoutingKey(e.Example())
		for _, field := range requiredFields(schema, defs, decodeJSON(t, e.Example()), nil) {
			path := pathString(field)
			t.Run(e.RoutingKey()+"/"+path, func(t *testing.T) {
				payload := decodeJSON(t, e.Example())
				removeAt(payload, field)
				b, _ := json.Marshal(payload)
				err := r.Validate(key, b)
				var verr *domains.ValidationError
				if !errors.As(err, &verr) || !slices.Contains(verr.Problems, domains.Problem{Path: path, Message: "required"}) {
					t.Errorf("Validate without %s = %v, want %q", path, err, path+": required")
				}
			})
		}
	}
}

func TestCatalog_wrongTypesAndValuesAreReported(t *testing.T) {
	r := newCatalog(t)
	tests := []struct {
		key   string
		patch string // merged into the example at the top level
		want  string // problems in document order; the patched payload's keys are sorted
	}{
		{"agent.thread.prompt", `{"tags": "analysis", "prompt": null}`, "payload.prompt: expected string, got null; payload.tags: expected array, got string"},
		{"agent.thread.response", `{"tokens_used": 4.5}`, "payload.tokens_used: expected integer or null, got number"},
		{"fireflies.transcript.ready", `{"duration": "15 min"}`, "payload.duration: expected number, got string"},
		{"fireflies.transcript.ready", `{"date": "29/01/2026"}`, `payload.date: expected an ISO-8601 date-time, got "29/01/2026"`},
		{"fireflies.transcript.ready", `{"user": {"user_id": 1}}`, "payload.user.user_id: expected string, got integer; payload.user.email: required; payload.user.name: required; " +
			"payload.user.num_transcripts: required; payload.user.minutes_consumed: required; payload.user.is_admin: required"},
		{"fireflies.transcript.failed", `{"failed_stage": "download"}`, `payload.failed_stage: expected one of "upload", "transcription", "processing", got "download"`},
		{"fireflies.transcript.upload", `{"created_at": null}`, "payload.created_at: expected string, got null"},
		{"agent.feedback.response", `{"status": "maybe", "metadata": []}`, `payload.metadata: expected object, got array; payload.status: expected one of "ok", "error", got "maybe"`},
		{"github.pr.created", `{"cache_type": "s3"}`, `payload.cache_type: expected one of "redis", "memory", "file", got "s3"`},
		{"theboard.meeting.created", `{"meeting_id": "42", "max_rounds": 2.5}`, `payload.max_rounds: expected integer, got number; payload.meeting_id: expected a UUID, got "42"`},
		{"theboard.meeting.participant.added", `{"agent_id": "a3e1c2d4-7b6f-4e5a-8c9d"}`, `payload.agent_id: expected a UUID, got "a3e1c2d4-7b6f-4e5a-8c9d"`},
		{"artifact.created", `{"action": "moved"}`, `payload.action: expected one of "created", "updated", "deleted", got "moved"`},
		{"artifact.created", `{"action": "deleted"}`, `payload.action: "deleted" does not match routing key "artifact.created"`},
	}
	for _, tt := range tests {
		t.Run(tt.key+" "+tt.patch, func(t *testing.T) {
			e, err := r.LookupKey(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			payload := decodeJSON(t, e.Example()).(map[string]any)
			for k, v := range decodeJSON(t, []byte(tt.patch)).(map[string]any) {
				payload[k] = v
			}
			b, _ := json.Marshal(payload)
			err = r.Validate(tt.key, b)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate =\n %v\nwant\n %s", err, tt.want)
			}
		})
	}
}

// TestCatalog_defaultsAreAppliedOnDecode decodes each example with every
// defaulted field absent, then null, and checks that encoding the result
// writes the default the schema documents (or a fresh time for "now").
func TestCatalog_defaultsAreAppliedOnDecode(t *testing.T) {
	r := newCatalog(t)
	for _, e := range r.Events(domains.Filter{}) {
		for name, prop := range schemaProperties(t, e) {
			def, hasDefault := prop["default"]
			isNow := prop["format"] == "date-time" && !slices.Contains(schemaRequired(t, e), name)
			if !hasDefault && !isNow {
				continue
			}
			for _, absent := range []string{"absent", "null"} {
				t.Run(e.RoutingKey()+"/"+name+"/"+absent, func(t *testing.T) {
					payload := decodeJSON(t, e.Example()).(map[string]any)
					if absent == "absent" {
						delete(payload, name)
					} else {
						payload[name] = nil
					}
					b, _ := json.Marshal(payload)
					before := time.Now().Add(-time.Second)
					v, err := e.Decode(b)
					if err != nil {
						t.Fatalf("Decode = %v", err)
					}
					out, _ := json.Marshal(v)
					got := decodeJSON(t, out).(map[string]any)[name]
					if isNow {
						ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got))
						if err != nil || ts.Before(before) || ts.After(time.Now().Add(time.Second)) {
							t.Errorf("%s = %v, want the time of decoding", name, got)
						}
						return
					}
					if !reflect.DeepEqual(got, def) {
						t.Errorf("%s = %#v, want the default %#v", name, got, def)
					}
				})
			}
		}
	}
}

// TestCatalog_encodingWritesNullsAndEmptyCollections encodes the zero value
// of every type, a payload built in Go with none of its optional fields
// set: every optional field must be present as null (Python writes
// explicit nulls) and every defaulted field as the default its schema
// declares, as Python would publish it.
func TestCatalog_encodingWritesNullsAndEmptyCollections(t *testing.T) {
	r := newCatalog(t)
	for _, e := range r.Events(domains.Filter{}) {
		t.Run(e.RoutingKey(), func(t *testing.T) {
			b, err := envelope.MarshalPayload(reflect.New(e.Type()).Elem().Interface())
			if err != nil {
				t.Fatal(err)
			}
			got := decodeJSON(t, b).(map[string]any)
			for name, prop := range schemaProperties(t, e) {
				value, present := got[name]
				if !present {
					t.Errorf("%s is missing from %s; write null instead", name, b)
					continue
				}
				if def, ok := prop["default"]; ok {
					if def == domains.DefaultNow {
						if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(value)); err != nil {
							t.Errorf("%s = %#v, want the time of encoding", name, value)
						}
					} else if !reflect.DeepEqual(value, def) {
						t.Errorf("%s = %#v, want the default %#v", name, value, def)
					}
				}
				if _, optional := prop["anyOf"]; optional && value != nil {
					t.Errorf("%s = %#v in a zero value, want null", name, value)
				}
			}
		})
	}
}

// requiredFields lists the path of every required field the example
// reaches, nested objects and the first element of arrays included.
func requiredFields(schema, defs map[string]any, inst any, at []any) [][]any {
	if ref, ok := schema["$ref"].(string); ok {
		schema = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	}
	if anyOf, ok := schema["anyOf"].([]any); ok {
		schema = anyOf[0].(map[string]any) // [X, {"type": "null"}]
	}
	var out [][]any
	switch inst := inst.(type) {
	case map[string]any:
		required, _ := schema["required"].([]any)
		for _, name := range required {
			out = append(out, append(slices.Clone(at), name))
		}
		props, _ := schema["properties"].(map[string]any)
		for name, sub := range props {
			if v, ok := inst[name]; ok {
				out = append(out, requiredFields(sub.(map[string]any), defs, v, append(slices.Clone(at), name))...)
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok && len(inst) > 0 {
			out = append(out, requiredFields(items, defs, inst[0], append(slices.Clone(at), 0))...)
		}
	}
	return out
}

func removeAt(v any, path []any) {
	for _, step := range path[:len(path)-1] {
		switch step := step.(type) {
		case string:
			v = v.(map[string]any)[step]
		case int:
			v = v.([]any)[step]
		}
	}
	delete(v.(map[string]any), path[len(path)-1].(string))
}

func pathString(path []any) string {
	s := "payload"
	for _, step := range path {
		switch step := step.(type) {
		case string:
			s += "." + step
		case int:
			s += fmt.Sprintf("[%d]", step)
		}
	}
	return s
}

func schemaProperties(t *testing.T, e *domains.EventType) map[string]map[string]any {
	t.Helper()
	var schema struct {
		Properties map[string]map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(e.Schema(), &schema); err != nil {
		t.Fatal(err)
	}
	return schema.Properties
}

func schemaRequired(t *testing.T, e *domains.EventType) []string {
	t.Helper()
	var schema struct {
		Required []string `json:"required"`
	}
	if err := json.Unmarshal(e.Schema(), &schema); err != nil {
		t.Fatal(err)
	}
	return schema.Required
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("cannot decode %s: %v", b, err)
	}
	return v
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	return reflect.DeepEqual(decodeJSON(t, a), decodeJSON(t, b))
}
