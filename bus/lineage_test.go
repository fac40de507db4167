package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
)

func TestBus_Publish_refusesAChildBeyondTheDepthBudget(t *testing.T) {
	b := embeddedBus(t, embedded.New(nil), "svc") // BB_MAX_DEPTH defaults to 32
	root := uuid.New()
	ctx := envelope.WithLineage(envelope.WithCause(context.Background(), uuid.New()), envelope.Lineage{Depth: 32, Root: root})
	env, err := envelope.New("agent.thread.response", prompt{Provider: "x", Prompt: "y"})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Publish(ctx, env)
	if !errors.Is(err, envelope.ErrDepthExceeded) || !envelope.IsPermanent(err) {
		t.Fatalf("Publish at depth 33 = %v, want a permanent error matching ErrDepthExceeded", err)
	}
	re, ok := errors.AsType[*envelope.RunawayError](err)
	if !ok || re.Root != root || re.Value != 33 || re.Limit != 32 {
		t.Errorf("RunawayError = %+v, want root %s, 33 over 32", re, root)
	}
}

func TestHandle_childrenCarryDepthAndRoot(t *testing.T) {
	broker := embedded.New(nil)
	b := embeddedBus(t, broker, "svc")
	s, err := b.NewService("")
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		depth, root, repeats string
	}
	got := make(chan seen, 4)
	if err := bus.Handle(s, "ping", "agent.thread.prompt", func(ctx context.Context, ev bus.Event[prompt]) error {
		child, err := envelope.New("agent.thread.response", map[string]any{"provider": "x", "response": "y"})
		if err != nil {
			return err
		}
		return b.Publish(ctx, child)
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Handle(s, "pong", "agent.thread.response", func(ctx context.Context, ev bus.Event[map[string]any]) error {
		md := ev.Message.Metadata
		got <- seen{md.Get(envelope.MetaDepth), md.Get(envelope.MetaRoot), md.Get(envelope.MetaRepeats)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runService(t, s)
	root, err := envelope.New("agent.thread.prompt", prompt{Provider: "x", Prompt: "y"}, envelope.WithSource(envelope.Source{Host: "h", Type: "manual", App: "cli"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s.depth != "1" || s.root != root.EventID.String() || s.repeats != "agent.thread.prompt%7Ccli=1" {
			t.Errorf("child headers %+v, want depth 1, root %s and the root's pair once", s, root.EventID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the child never arrived")
	}
}
