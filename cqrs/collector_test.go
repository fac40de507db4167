package cqrs_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/artifact"
	"github.com/33god/bloodbank-go/domains/catalog"
)

func newCollector(t *testing.T, cc cqrs.CommandContext) *cqrs.Collector {
	t.Helper()
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC)
	c, err := cqrs.NewCollector(cc, cqrs.CollectorConfig{Registry: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCollector_completesEventsInOrder(t *testing.T) {
	cc := cqrs.CommandContext{EventID: uuid.New(), EventType: thread.RoutingKeyPrompt, AgentContext: claudeCode}
	c := newCollector(t, cc)

	first, err := c.Add(thread.Response{Provider: "anthropic", Response: "one"})
	if err != nil {
		t.Fatal(err)
	}
	own := envelope.AgentContext{Type: envelope.AgentLetta}
	keep := uuid.New()
	second, err := c.AddEnvelope(envelope.Envelope{EventType: "custom.thing.happened", Payload: []byte(`{"n":2}`), AgentContext: &own, CorrelationIDs: []uuid.UUID{keep}})
	if err != nil {
		t.Fatal(err)
	}
	chosen := uuid.New()
	third, err := c.AddEnvelope(envelope.Envelope{EventID: chosen, EventType: thread.RoutingKeyError, Payload: []byte(`{"provider":"x","error_message":"e"}`)})
	if err != nil {
		t.Fatal(err)
	}

	if first.EventID != cqrs.SideEffectID(thread.RoutingKeyResponse, cc.EventID, 0) ||
		second.EventID != cqrs.SideEffectID("custom.thing.happened", cc.EventID, 1) {
		t.Errorf("ids %s, %s are not the deterministic ids of positions 0 and 1", first.EventID, second.EventID)
	}
	if third.EventID != chosen {
		t.Errorf("an envelope's own id was replaced: %s", third.EventID)
	}
	if !reflect.DeepEqual(first.CorrelationIDs, []uuid.UUID{cc.EventID}) || !reflect.DeepEqual(second.CorrelationIDs, []uuid.UUID{cc.EventID, keep}) {
		t.Errorf("correlation ids %v, %v", first.CorrelationIDs, second.CorrelationIDs)
	}
	if first.AgentContext != claudeCode || second.AgentContext.Type != envelope.AgentLetta || third.AgentContext != claudeCode {
		t.Error("agent context not inherited, or an envelope's own replaced")
	}
	if first.Source.App != "command_processor" || first.Source.Type != envelope.TriggerAgent || first.Version != envelope.Version || first.Timestamp.Year() != 2026 {
		t.Errorf("first event = %+v", first)
	}
	got := c.Events()
	if len(got) != 3 || got[0].EventID != first.EventID || got[1].EventID != second.EventID || got[2].EventID != third.EventID {
		t.Errorf("Events() = %v, want the three in order", got)
	}
}

func TestCollector_refusesWhatCannotBePublished(t *testing.T) {
	c := newCollector(t, cqrs.CommandContext{EventID: uuid.New()})
	for name, add := range map[string]func() error{
		"unregistered type": func() error { _, err := c.Add(struct{ A int }{1}); return err },
		"invalid payload": func() error {
			_, err := c.Add(artifact.Changed{Action: "exploded", Kind: "doc", URI: "file:///a"})
			return err
		},
		"no event type": func() error { _, err := c.AddEnvelope(envelope.Envelope{Payload: []byte(`{}`)}); return err },
		"invalid envelope payload": func() error {
			_, err := c.AddEnvelope(envelope.Envelope{EventType: thread.RoutingKeyResponse, Payload: []byte(`{"provider":1}`)})
			return err
		},
	} {
		err := add()
		if !envelope.IsPermanent(err) {
			t.Errorf("%s: err = %v, want a permanent error", name, err)
		}
		if name == "invalid payload" && !errors.Is(err, domains.ErrInvalidPayload) {
			t.Errorf("%s: err = %v, want ErrInvalidPayload", name, err)
		}
	}
	if len(c.Events()) != 0 {
		t.Errorf("%d events collected, want none", len(c.Events()))
	}
}

func TestSideEffectID_isPythonsGenerateEventID(t *testing.T) {
	cmd := uuid.MustParse("0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11")
	// uuid5(NAMESPACE_OID, "bloodbank:agent.thread.response:command_id=0b6f1c9e-...|position=0")
	want := envelope.DeterministicIDFromKey(thread.RoutingKeyResponse, "command_id=0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11|position=0")
	if got := cqrs.SideEffectID(thread.RoutingKeyResponse, cmd, 0); got != want {
		t.Errorf("SideEffectID = %s, want %s", got, want)
	}
}

// Under a replay a collected event gets an id derived from the replay id,
// other than the first run's and another replay's; without one, the ids
// are SideEffectID's, as Python gives them.
func TestCollector_replayDerivesNewIDs(t *testing.T) {
	cmd := uuid.New()
	ids := map[string]uuid.UUID{}
	for _, replay := range []string{"", "r1", "r2"} {
		c := newCollector(t, cqrs.CommandContext{EventID: cmd, EventType: thread.RoutingKeyPrompt, ReplayID: replay})
		env, err := c.Add(thread.Response{Provider: "anthropic", Response: "one"})
		if err != nil {
			t.Fatal(err)
		}
		ids[replay] = env.EventID
	}
	if want := cqrs.SideEffectID(thread.RoutingKeyResponse, cmd, 0); ids[""] != want {
		t.Errorf("first run id %s, want SideEffectID %s", ids[""], want)
	}
	if want := cqrs.ReplaySideEffectID(thread.RoutingKeyResponse, cmd, 0, "r1"); ids["r1"] != want {
		t.Errorf("replay id %s, want ReplaySideEffectID %s", ids["r1"], want)
	}
	if ids["r1"] == ids[""] || ids["r1"] == ids["r2"] {
		t.Errorf("ids %v: a replay's must differ from the first run's and from another replay's", ids)
	}
}
