package feedback_test

import (
	"testing"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/agent/feedback"
)

func TestResponse_defaults(t *testing.T) {
	for _, payload := range []string{
		`{"agent_id": "a"}`,
		`{"agent_id": "a", "letta_agent_id": null, "response": null, "status": null, "error_message": null, "metadata": null}`,
	} {
		got, err := domains.Decode[feedback.Response]([]byte(payload))
		if err != nil || got.Response != "" || got.Status != feedback.StatusOK || got.Metadata == nil {
			t.Errorf("Decode(%s) = %+v, %v; want empty response, status ok, empty metadata", payload, got, err)
		}
	}
	b, _ := envelope.MarshalPayload(feedback.Response{AgentID: "a"})
	want := `{"agent_id":"a","letta_agent_id":null,"response":"","status":"ok","error_message":null,"metadata":{}}`
	if string(b) != want {
		t.Errorf("Marshal = %s\nwant %s", b, want)
	}
}

func TestRequested_pythonPayloadValidatesAndDecodes(t *testing.T) {
	r := domains.NewRegistry()
	if err := feedback.Register(r); err != nil {
		t.Fatal(err)
	}
	payload := `{"agent_id": "agent-code-reviewer", "message": "ship it?", "letta_agent_id": null, "context": null, "tags": []}`
	if err := r.Validate(feedback.RoutingKeyRequested, []byte(payload)); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	got, err := domains.Decode[feedback.Requested]([]byte(payload))
	if err != nil || got.Context != nil || got.Tags == nil {
		t.Errorf("Decode = %+v, %v", got, err)
	}
	for _, e := range r.Events(domains.Filter{}) {
		if e.Kind() != domains.Fact {
			t.Errorf("%s is a %s; agent.feedback events are always facts", e.RoutingKey(), e.Kind())
		}
	}
}
