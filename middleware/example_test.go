package middleware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/middleware"
)

// A plain Watermill router on GoChannel, which has never heard of
// bus.Service: prompts are validated against the catalogue, the answer a
// handler returns is linked to its prompt, and the link is recorded in an
// (embedded) correlation store once the answer is published.
func Example() {
	reg, err := catalog.New()
	if err != nil {
		panic(err)
	}
	validation, err := middleware.NewValidation(middleware.ValidationConfig{Validator: reg})
	if err != nil {
		panic(err)
	}
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{})
	if err != nil {
		panic(err)
	}
	defer rec.Close(context.Background())

	logger := watermill.NopLogger{}
	// Publishing a prompt returns once the router acked it, so the output
	// below comes in order.
	prompts := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, logger)
	answers := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1}, logger)
	defer prompts.Close()
	defer answers.Close()
	answered, err := answers.Subscribe(context.Background(), "agent.thread.response")
	if err != nil {
		panic(err)
	}

	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		panic(err)
	}
	router.AddPublisherDecorators(middleware.RecordingPublisherDecorator(rec))
	router.AddMiddleware(
		parkPermanent, // stands in for a poison queue
		validation.Middleware,
		middleware.Causation,
	)
	router.AddHandler("answer_prompts", "agent.thread.prompt", prompts, "agent.thread.response", answers,
		func(msg *message.Message) ([]*message.Message, error) {
			var p struct{ Provider, Prompt string }
			if err := json.Unmarshal(msg.Payload, &p); err != nil {
				return nil, err
			}
			env, err := envelope.New("agent.thread.response",
				map[string]any{"provider": p.Provider, "response": "echo: " + p.Prompt},
				envelope.WithEventID(uuid.MustParse("22222222-2222-4222-8222-222222222222")))
			if err != nil {
				return nil, err
			}
			answer, err := envelope.NewMessage(env)
			return []*message.Message{answer}, err
		})
	go func() { _ = router.Run(context.Background()) }()
	defer router.Close()
	<-router.Running()

	publish := func(id, payload string) {
		env, err := envelope.New("agent.thread.prompt", json.RawMessage(payload),
			envelope.WithEventID(uuid.MustParse(id)), envelope.WithTimestamp(time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC)))
		if err != nil {
			panic(err)
		}
		msg, err := envelope.NewMessage(env)
		if err != nil {
			panic(err)
		}
		if err := prompts.Publish("agent.thread.prompt", msg); err != nil {
			panic(err)
		}
	}
	publish("00000000-0000-4000-8000-00000000000b", `{"provider":"anthropic","prompt":"hi","tags":"analysis"}`)
	publish("11111111-1111-4111-8111-111111111111", `{"provider":"anthropic","prompt":"hi","tags":["analysis"]}`)

	answer := <-answered
	answer.Ack()
	fmt.Println("answer", answer.UUID, "correlation_ids", envelope.CorrelationIDs(answer))
	parents, _ := store.Parents(context.Background(), uuid.MustParse(answer.UUID))
	fmt.Println("recorded parents", parents)
	md, _ := store.Metadata(context.Background(), uuid.MustParse(answer.UUID))
	fmt.Println("recorded metadata", md)
	fmt.Printf("%+v\n", validation.Stats())
	// Output:
	// parked 00000000-0000-4000-8000-00000000000b: permanent invalid failure: payload.tags: expected array, got string
	// answer 22222222-2222-4222-8222-222222222222 correlation_ids [11111111-1111-4111-8111-111111111111]
	// recorded parents [11111111-1111-4111-8111-111111111111]
	// recorded metadata map[depth:1 event_type:agent.thread.response repeats:agent.thread.prompt%7C=1 root:11111111-1111-4111-8111-111111111111]
	// {Valid:1 Invalid:1 Malformed:0 Unknown:0}
}

// parkPermanent acks a message that failed permanently, after saying why, as a
// poison queue would after parking it. Without it a plain router nacks the
// message and GoChannel hands it back at once, forever.
func parkPermanent(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if envelope.IsPermanent(err) {
			fmt.Printf("parked %s: %v\n", msg.UUID, err)
			return nil, nil
		}
		return out, err
	}
}
