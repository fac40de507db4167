package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// relayBody is an envelope as a newer Python service might write it, with
// members this module does not know at every level.
func relayBody(id string) []byte {
	return []byte(`{"event_id":"` + id + `","event_type":"orders.created","timestamp":"2026-01-29T10:00:00.123456Z","version":"1.0.0",` +
		`"source":{"host":"h","type":"service","app":null,"meta":null,"x_src":{"k":[1,2]}},"correlation_ids":[],` +
		`"agent_context":{"type":"letta","name":null,"system_prompt":null,"instance_id":null,"mcp_servers":null,"file_references":null,"url_references":null,` +
		`"code_state":{"repo_url":null,"branch":"main","working_diff":null,"branch_diff":null,"last_commit_hash":null,"x_cs":true},"checkpoint_id":null,"meta":null,"x_ac":"a"},` +
		`"payload":{"id":"o-1"},"x_top":"t","x_last":null}`)
}

// bodies records the body of every delivery a handler got, in order.
type bodies struct {
	mu           sync.Mutex
	got          [][]byte
	redeliveries []string // HeaderRedeliveries of each delivery
}

func (b *bodies) add(msg *message.Message) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, envelope.OriginalBody(msg))
	b.redeliveries = append(b.redeliveries, msg.Metadata.Get(middleware.HeaderRedeliveries))
	return len(b.got)
}

func (b *bodies) all() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got
}

// A retry through the broker's delay queues and a replay from the poison
// queue re-publish the event: either way the handler gets back every member
// that the first delivery had, known or not, in its order.
func TestRelay_delayQueueAndReplayKeepUnknownMembers(t *testing.T) {
	for _, path := range []string{"delay queue", "poison replay"} {
		t.Run(path, func(t *testing.T) {
			r := relNewRabbit(t, nil, "BB_CONSUMERS=1")
			cfg := reliability.Config{Retry: fastRetry()}
			cfg.Retry.MaxAttempts = 1
			svc, _ := r.newService(cfg)
			seen := &bodies{}
			if err := svc.HandleMessage("h", "orders.#", func(msg *message.Message) error {
				if n := seen.add(msg); n == 1 {
					if path == "poison replay" {
						return envelope.Permanent(errors.New("not yet"))
					}
					return errors.New("transient")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			relRunService(t, svc)

			id := uuid.NewString()
			sent := relayBody(id)
			conn := r.raw()
			r.publishRaw(conn, "orders.created", sent, id)
			if path == "poison replay" {
				q := reliability.NewPoisonQueue(r.bus, r.service)
				ctx := context.Background()
				relEventually(t, relWait, "the event parked", func() bool { n, err := q.Count(ctx); return err == nil && n == 1 })
				if _, err := q.Replay(ctx, reliability.PoisonFilter{EventIDs: []string{id}}); err != nil {
					t.Fatal(err)
				}
			}
			relEventually(t, relWait, "the event delivered again", func() bool { return len(seen.all()) == 2 })
			got := seen.all()
			if !bytes.Equal(got[0], sent) {
				t.Errorf("first delivery:\n got %s\nwant %s", got[0], sent)
			}
			env, err := envelope.Decode(got[1])
			if err != nil {
				t.Fatalf("the re-published body is not an envelope: %v\n%s", err, got[1])
			}
			for _, member := range []string{`,"x_src":{"k":[1,2]}}`, `,"x_cs":true}`, `,"x_ac":"a"}`, `"payload":{"id":"o-1"},"x_top":"t","x_last":null}`} {
				if !bytes.Contains(got[1], []byte(member)) {
					t.Errorf("the re-published body lost %s:\n%s", member, got[1])
				}
			}
			if env.EventID.String() != id {
				t.Errorf("event id %s, want %s", env.EventID, id)
			}
			if path == "delay queue" && seen.redeliveries[1] != "1" {
				t.Errorf("second delivery has %s = %q, want 1: it did not come through a delay queue", middleware.HeaderRedeliveries, seen.redeliveries[1])
			}
		})
	}
}
