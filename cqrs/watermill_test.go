package cqrs_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wcqrs "github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/cqrs/commands"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// The processor's pieces are Watermill cqrs pieces: its handlers run
// unchanged under Watermill's own CommandProcessor on a plain router and
// GoChannel, fed by Watermill's CommandBus through the processor's
// Marshaler. Only the binding to a shared service queue is the
// processor's own (AddHandlersToService).
func TestHandlers_runUnderWatermillCommandProcessor(t *testing.T) {
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	logger := watermill.NopLogger{}
	pubSub := gochannel.NewGoChannel(gochannel.Config{}, logger)
	defer pubSub.Close()

	proc, err := cqrs.NewProcessor(pubSub, cqrs.ProcessorConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := commands.Register(proc, nil); err != nil {
		t.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := wcqrs.NewCommandProcessorWithConfig(router, wcqrs.CommandProcessorConfig{
		GenerateSubscribeTopic: func(p wcqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) {
			return p.CommandName, nil
		},
		SubscriberConstructor: func(wcqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return pubSub, nil
		},
		Marshaler: proc.Marshaler(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.AddHandlers(proc.Handlers()...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	responses, err := pubSub.Subscribe(ctx, thread.RoutingKeyResponse)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = router.Run(ctx) }()
	<-router.Running()

	var sent *message.Message
	commandBus, err := wcqrs.NewCommandBusWithConfig(pubSub, wcqrs.CommandBusConfig{
		GeneratePublishTopic: func(p wcqrs.CommandBusGeneratePublishTopicParams) (string, error) { return p.CommandName, nil },
		OnSend:               func(p wcqrs.CommandBusOnSendParams) error { sent = p.Message; return nil },
		Marshaler:            proc.Marshaler(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := commandBus.Send(ctx, thread.Prompt{Provider: "anthropic", Prompt: "from Go"}); err != nil {
		t.Fatal(err)
	}
	if got := envelope.EventType(sent); got != thread.RoutingKeyPrompt {
		t.Fatalf("CommandBus sent event type %q", got)
	}
	select {
	case msg := <-responses:
		msg.Ack()
		env, err := envelope.FromMessage(msg)
		if err != nil {
			t.Fatal(err)
		}
		promptID := uuid.MustParse(sent.UUID)
		if env.EventID != cqrs.SideEffectID(thread.RoutingKeyResponse, promptID, 0) || !reflect.DeepEqual(env.CorrelationIDs, []uuid.UUID{promptID}) {
			t.Errorf("response %s caused by %v, want the deterministic id caused by %s", env.EventID, env.CorrelationIDs, promptID)
		}
	case <-ctx.Done():
		t.Fatal("no response through Watermill's CommandProcessor")
	}
}
