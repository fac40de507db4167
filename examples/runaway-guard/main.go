// Command runaway-guard shows the runaway-chain guard in a plain Watermill
// router, on Watermill's in-memory GoChannel: no bus.Bus, no bus.Service.
//
// Two agents answer each other forever: agent-a answers every
// agent.thread.prompt with an agent.thread.response, and agent-b every
// response with a new prompt. Causation gives each answer its place in the
// chain (x-bb-depth, x-bb-root, x-bb-repeats); middleware.Guard stops the
// chain once one agent's answer appears more than MaxRepeats times among an
// event's ancestors (or the depth passes MaxDepth), and Poison parks the
// stopped event with a reason that names the rule, the root and the numbers.
// The descendants budget is counted in an in-process Redis here
// (correlation.NewEmbeddedStore); a service shares the real one.
//
// It prints each hop, the parked message and exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/middleware"
)

const (
	topicPrompt   = "agent.thread.prompt"
	topicResponse = "agent.thread.response"
	topicPoison   = "agents.poison"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if err := run(ctx, logger, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "runaway-guard:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	wlog := watermill.NewSlogLogger(logger)
	pubSub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 64}, wlog)
	defer pubSub.Close()

	// The descendants counter lives in Redis; an in-process one here.
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		return err
	}
	defer store.Close()
	client := redis.NewClient(&redis.Options{Addr: store.Addr()})
	defer client.Close()

	guard, err := middleware.NewGuard(middleware.GuardConfig{
		MaxDepth:       middleware.DefaultMaxDepth,       // BB_MAX_DEPTH
		MaxRepeats:     middleware.DefaultMaxRepeats,     // BB_MAX_REPEATS
		MaxDescendants: middleware.DefaultMaxDescendants, // BB_MAX_DESCENDANTS
		Links:          store,                            // places events that come without the headers (from Python)
		Counter:        middleware.NewRedisDescendantCounter(client, "", 0),
		Logger:         logger,
	})
	if err != nil {
		return err
	}
	poison, err := middleware.NewPoison(middleware.PoisonConfig{Publisher: pubSub, Queue: topicPoison, Service: "agents"})
	if err != nil {
		return err
	}
	parked, err := pubSub.Subscribe(ctx, topicPoison)
	if err != nil {
		return err
	}

	router, err := message.NewRouter(message.RouterConfig{}, wlog)
	if err != nil {
		return err
	}
	// Outermost first: Poison parks what Guard stops; Guard places the
	// event before Causation hands its place on to the answers.
	router.AddMiddleware(poison.Middleware, guard.Middleware, middleware.Causation)
	router.AddHandler("agent_a", topicPrompt, pubSub, topicResponse, pubSub, answer(out, "agent-a", topicResponse))
	router.AddHandler("agent_b", topicResponse, pubSub, topicPrompt, pubSub, answer(out, "agent-b", topicPrompt))
	go func() { _ = router.Run(ctx) }()
	defer router.Close()
	<-router.Running()

	first, err := event(topicPrompt, "user")
	if err != nil {
		return err
	}
	if err := pubSub.Publish(topicPrompt, first); err != nil {
		return err
	}
	select {
	case msg := <-parked:
		msg.Ack()
		l, _ := envelope.LineageOf(msg)
		fmt.Fprintf(out, "parked %s at depth %d (root is the first prompt: %v)\n", msg.Metadata.Get(envelope.MetaOriginalRoutingKey), l.Depth, l.Root.String() == first.UUID)
		fmt.Fprintf(out, "  kind %s: %s\n", msg.Metadata.Get(middleware.HeaderPoisonKind), redact(msg.Metadata.Get(middleware.HeaderPoisonReason), first.UUID))
	case <-ctx.Done():
		return errors.New("the chain was never stopped")
	}
	fmt.Fprintf(out, "guard %+v\n", guard.Stats())
	return nil
}

// answer is an agent: it answers every event with one of type answerType.
func answer(out io.Writer, app, answerType string) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		l, _ := envelope.LineageFromContext(msg.Context())
		fmt.Fprintf(out, "depth %2d  %s answers %s\n", l.Depth, app, envelope.EventType(msg))
		reply, err := event(answerType, app)
		if err != nil {
			return nil, err
		}
		return []*message.Message{reply}, nil
	}
}

func event(eventType, app string) (*message.Message, error) {
	env, err := envelope.New(eventType, map[string]any{"provider": "demo", "prompt": "and you?", "response": "and you?"},
		envelope.WithSource(envelope.Source{Host: "localhost", Type: envelope.TriggerAgent, App: app}))
	if err != nil {
		return nil, err
	}
	return envelope.NewMessage(env)
}

// redact replaces the random ids of a reason, so the output never varies.
func redact(reason, root string) string {
	var out []byte
	for i := 0; i < len(reason); {
		if i+36 <= len(reason) && isUUID(reason[i:i+36]) {
			if reason[i:i+36] == root {
				out = append(out, "<root>"...)
			} else {
				out = append(out, "<event>"...)
			}
			i += 36
			continue
		}
		out = append(out, reason[i])
		i++
	}
	return string(out)
}

func isUUID(s string) bool {
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
