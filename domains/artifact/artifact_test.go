package artifact_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/artifact"
)

func registry(t *testing.T) *domains.Registry {
	t.Helper()
	r := domains.NewRegistry()
	if err := artifact.Register(r); err != nil {
		t.Fatalf("Register = %v", err)
	}
	return r
}

func TestChanged_routingKeyComesFromAction(t *testing.T) {
	r := registry(t)
	tests := []struct {
		action artifact.Action
		want   string
	}{
		{artifact.ActionCreated, artifact.RoutingKeyCreated},
		{artifact.ActionUpdated, artifact.RoutingKeyUpdated},
		{artifact.ActionDeleted, artifact.RoutingKeyDeleted},
	}
	for _, tt := range tests {
		v := artifact.Changed{Action: tt.action, Kind: "code", URI: "file:///src/main.go"}
		if got, err := r.RoutingKeyFor(v); err != nil || got != tt.want {
			t.Errorf("RoutingKeyFor(action=%s) = %q, %v; want %q", tt.action, got, err, tt.want)
		}
		e, err := r.LookupKey(tt.want)
		if err != nil || e.RoutingKey() != artifact.RoutingKeyTemplate {
			t.Errorf("LookupKey(%s) = %v, %v; want the %s type", tt.want, e, err, artifact.RoutingKeyTemplate)
		}
	}
}

func TestChanged_routingKeyFromJSON(t *testing.T) {
	e, _ := registry(t).Lookup("Artifact")
	tests := []struct {
		payload string
		want    string // the key, or the error
	}{
		{`{"action": "created", "kind": "code", "uri": "x"}`, "artifact.created"},
		{`{"kind": "code", "uri": "x"}`, `cannot resolve routing key "artifact.{action}": payload.action: required to fill routing key artifact.{action}`},
		{`{"action": "moved", "kind": "code", "uri": "x"}`, `cannot resolve routing key "artifact.{action}": payload.action: expected one of "created", "updated", "deleted", got "moved"`},
	}
	for _, tt := range tests {
		got, err := e.ResolveRoutingKey([]byte(tt.payload))
		if err != nil {
			got = err.Error()
			if !errors.Is(err, domains.ErrInvalidPayload) {
				t.Errorf("ResolveRoutingKey(%s) = %v, want it to match ErrInvalidPayload", tt.payload, err)
			}
		}
		if got != tt.want {
			t.Errorf("ResolveRoutingKey(%s) = %q, want %q", tt.payload, got, tt.want)
		}
	}
}

func TestChanged_validateChecksActionAgainstKey(t *testing.T) {
	r := registry(t)
	payload := []byte(`{"action": "deleted", "kind": "document", "uri": "x", "title": null, "content": null, "metadata": {}}`)
	if err := r.Validate(artifact.RoutingKeyDeleted, payload); err != nil {
		t.Errorf("Validate(artifact.deleted) = %v", err)
	}
	err := r.Validate(artifact.RoutingKeyUpdated, payload)
	if want := `payload.action: "deleted" does not match routing key "artifact.updated"`; err == nil || err.Error() != want {
		t.Errorf("Validate(artifact.updated) = %v, want %q", err, want)
	}
	if err := r.Validate("artifact.moved", payload); !errors.Is(err, domains.ErrUnknownEventType) {
		t.Errorf("Validate(artifact.moved) = %v, want ErrUnknownEventType", err)
	}
}

func TestIngestionFailed_isAnExactKeyBesideTheTemplate(t *testing.T) {
	e, err := registry(t).LookupKey(artifact.RoutingKeyIngestionFailed)
	if err != nil || e.Name() != "artifact.IngestionFailed" {
		t.Errorf("LookupKey(%s) = %v, %v", artifact.RoutingKeyIngestionFailed, e, err)
	}
}

func TestDefaults(t *testing.T) {
	failed, err := domains.Decode[artifact.IngestionFailed]([]byte(`{"artifact_uri": "x", "artifact_kind": "code", "error_message": "e", "is_retryable": null}`))
	if err != nil || failed.IsRetryable == nil || !*failed.IsRetryable || failed.RetryCount != 0 {
		t.Errorf("Decode(IngestionFailed) = %+v, %v; want retryable by default", failed, err)
	}
	changed, err := domains.Decode[artifact.Changed]([]byte(`{"action": "created", "kind": "code", "uri": "x"}`))
	if err != nil || changed.Metadata == nil {
		t.Errorf("Decode(Changed) = %+v, %v; want empty, non-nil metadata", changed, err)
	}
	b, _ := envelope.MarshalPayload(artifact.Changed{Action: artifact.ActionCreated})
	if !strings.Contains(string(b), `"metadata":{}`) || !strings.Contains(string(b), `"title":null`) {
		t.Errorf("Marshal = %s, want metadata {} and title null", b)
	}
}
