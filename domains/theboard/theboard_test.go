package theboard_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/theboard"
)

func registry(t *testing.T) *domains.Registry {
	t.Helper()
	r := domains.NewRegistry()
	if err := theboard.Register(r); err != nil {
		t.Fatalf("Register = %v", err)
	}
	return r
}

func TestMeetingFailed_pythonPayloadValidatesAndDecodes(t *testing.T) {
	payload := `{"meeting_id": "5F0C7A9E-2B1D-4C8E-9A3F-6D2E1B0C4A77", "error_type": "ProviderError",
		"error_message": "overloaded", "round_num": null, "agent_name": null}`
	if err := registry(t).Validate(theboard.RoutingKeyMeetingFailed, []byte(payload)); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	got, err := domains.Decode[theboard.MeetingFailed]([]byte(payload))
	if err != nil || got.MeetingID != uuid.MustParse("5f0c7a9e-2b1d-4c8e-9a3f-6d2e1b0c4a77") || got.RoundNum != nil || got.AgentName != nil {
		t.Errorf("Decode = %+v, %v", got, err)
	}
}

// Python types strategy and turn_type as plain strings, so Go must not
// reject a value it has no constant for.
func TestOpenStringsAcceptUnknownValues(t *testing.T) {
	r := registry(t)
	tests := []struct{ key, payload string }{
		{theboard.RoutingKeyMeetingCreated, `{"meeting_id": "5f0c7a9e-2b1d-4c8e-9a3f-6d2e1b0c4a77", "topic": "t", "strategy": "round_robin", "max_rounds": 3}`},
		{theboard.RoutingKeyParticipantTurnCompleted, `{"meeting_id": "5f0c7a9e-2b1d-4c8e-9a3f-6d2e1b0c4a77", "round_num": 1,
			"agent_id": "a3e1c2d4-7b6f-4e5a-8c9d-0f1e2d3c4b5a", "agent_name": "sre", "turn_type": "rebuttal", "response_text": "r", "tokens_used": 3}`},
	}
	for _, tt := range tests {
		if err := r.Validate(tt.key, []byte(tt.payload)); err != nil {
			t.Errorf("Validate(%s) = %v, want nil", tt.key, err)
		}
	}
}

func TestParticipantAdded_malformedUUIDsAreReported(t *testing.T) {
	err := registry(t).Validate(theboard.RoutingKeyParticipantAdded, []byte(
		`{"meeting_id": "5f0c7a9e2b1d4c8e9a3f6d2e1b0c4a7", "agent_id": 7, "agent_name": "sre", "expertise": "ops"}`))
	want := `payload.meeting_id: expected a UUID, got "5f0c7a9e2b1d4c8e9a3f6d2e1b0c4a7"; payload.agent_id: expected string, got integer`
	if err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %q", err, want)
	}
}
