package bus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
)

func TestSubscribeAll_oneChannelPerPatternInOrder(t *testing.T) {
	broker := embedded.New(nil)
	t.Cleanup(func() { _ = broker.Close() })
	b := embeddedBus(t, broker, "subscribe_all")
	sub, err := b.TemporarySubscriber(transport.SubscriberConfig{QueueName: func(p string) string { return "tmp." + p }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	chans, err := bus.SubscribeAll(context.Background(), sub, []string{"a.*", "b.#"}, 5*time.Second)
	if err != nil || len(chans) != 2 {
		t.Fatalf("SubscribeAll = %d channels, %v; want 2", len(chans), err)
	}
	for i, key := range []string{"a.x", "b.y.z"} {
		env, err := envelope.New(key, map[string]any{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(context.Background(), env); err != nil {
			t.Fatal(err)
		}
		select {
		case msg := <-chans[i]:
			msg.Ack()
			if got := envelope.EventType(msg); got != key {
				t.Errorf("channel %d got %s, want %s", i, got, key)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("nothing on channel %d for %s", i, key)
		}
	}
}

// blockingSubscriber stands in for a broker that never answers a declare.
type blockingSubscriber struct{ release chan struct{} }

func (s blockingSubscriber) Subscribe(context.Context, string) (<-chan *message.Message, error) {
	<-s.release
	return nil, context.Canceled
}

func (s blockingSubscriber) Close() error { return nil }

func TestSubscribeAll_boundedWhileTheBrokerDoesNotAnswer(t *testing.T) {
	sub := blockingSubscriber{release: make(chan struct{})}
	defer close(sub.release)
	start := time.Now()
	_, err := bus.SubscribeAll(context.Background(), sub, []string{"#"}, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "within 50ms") {
		t.Errorf("SubscribeAll = %v, want a timeout naming the bound", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("SubscribeAll waited %s past its bound", waited)
	}
}
