package main

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// demoTimeout bounds how long the demo waits for its answer.
const demoTimeout = 15 * time.Second

// runDemo publishes one agent.thread.prompt once the service consumes, and
// logs the response it gets and the link recorded for it, so that `make run`
// on a bare machine shows a command answered end to end. It watches the
// responses through a temporary queue (exclusive and auto-deleted on
// RabbitMQ), so it leaves nothing behind.
func runDemo(ctx context.Context, b *bus.Bus, store correlation.Store, rec *correlation.Recorder, running <-chan struct{}, logger *slog.Logger) {
	logger = logger.With(slog.Bool("demo", true))
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	select {
	case <-running:
	case <-ctx.Done():
		return
	}
	queue := b.Config().ExchangeName + ".demo." + uuid.NewString()[:8]
	sub, err := b.TemporarySubscriber(transport.SubscriberConfig{QueueName: func(string) string { return queue }, Consumers: 1, DrainTimeout: time.Second, Logger: logger})
	if err != nil {
		logger.Error("demo: cannot watch responses", slog.String("error", err.Error()))
		return
	}
	defer func() { _ = sub.Close() }()
	responses, err := sub.Subscribe(ctx, thread.RoutingKeyResponse)
	if err != nil {
		logger.Error("demo: cannot watch responses", slog.String("error", err.Error()))
		return
	}

	prompt, err := envelope.New(thread.RoutingKeyPrompt,
		thread.Prompt{Provider: "demo", Model: new("echo"), Prompt: "Hello from the command-processor demo", Tags: []string{"demo"}},
		envelope.WithSource(envelope.Source{Host: envelope.Hostname(), Type: envelope.TriggerManual, App: "command-processor-demo"}),
		envelope.WithAgentContext(&envelope.AgentContext{Type: envelope.AgentCustom, Name: "demo"}))
	if err == nil {
		err = b.Publish(ctx, prompt)
	}
	if err != nil {
		logger.Error("demo: cannot publish the prompt", slog.String("error", err.Error()))
		return
	}
	logger.Info("demo: prompt published", slog.String("id", prompt.EventID.String()), slog.String("type", prompt.EventType))

	var resp envelope.Envelope
	for resp.EventID == uuid.Nil {
		select {
		case msg, ok := <-responses:
			if !ok {
				return
			}
			msg.Ack()
			env, err := envelope.FromMessage(msg)
			if err == nil && slices.Contains(env.CorrelationIDs, prompt.EventID) {
				resp = env
			}
		case <-ctx.Done():
			logger.Warn("demo: no response", slog.String("prompt_id", prompt.EventID.String()))
			return
		}
	}
	logger.Info("demo: response received", slog.String("id", resp.EventID.String()), slog.String("type", resp.EventType),
		slog.String("correlation_ids", envelope.JoinIDs(resp.CorrelationIDs)), slog.String("payload", string(resp.Payload)),
		slog.Bool("deterministic_id", resp.EventID == cqrs.SideEffectID(resp.EventType, prompt.EventID, 0)))

	// The link is recorded after the confirm, so it may trail the response.
	for {
		_ = rec.Flush(ctx)
		link, err := store.Lookup(ctx, resp.EventID)
		if err == nil {
			logger.Info("demo: correlation link recorded", slog.String("child", link.Child.String()),
				slog.String("parents", envelope.JoinIDs(link.Parents)), slog.Any("metadata", link.Metadata))
			return
		}
		if !errors.Is(err, correlation.ErrNotFound) {
			logger.Warn("demo: cannot read the correlation link", slog.String("error", err.Error()))
			return
		}
		select {
		case <-ctx.Done():
			logger.Warn("demo: no correlation link recorded", slog.String("child", resp.EventID.String()))
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
