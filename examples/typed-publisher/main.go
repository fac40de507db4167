// Command typed-publisher is a producer that publishes typed events: Go
// payload structs whose routing key, schema and validation come from the
// domains catalogue. Each event gets a deterministic id, the one a Python
// service computes for the same fact, and the second event names the first
// as its parent (correlation_ids).
//
// It publishes a fireflies.transcript.upload request twice (the same fact,
// so the same id), then the fireflies.transcript.ready it led to, prints
// what a consumer on fireflies.transcript.* receives, and exits.
//
// Without RABBIT_URL it runs on the embedded in-process transport; with
// RABBIT_URL it publishes to the real exchange.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/google/uuid"
	"github.com/lmittmann/tint"
	"golang.org/x/term"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/domains/fireflies"
)

func main() {
	// Readable lines on stderr, colored on a terminal.
	logger := slog.New(tint.NewTextHandler(os.Stderr, &tint.Options{NoColor: !term.IsTerminal(int(os.Stderr.Fd()))}))
	cfg, err := bus.LoadConfig(os.Environ(), ".env")
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = run(ctx, cfg, logger, os.Stdout)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "typed-publisher:", err)
		os.Exit(1)
	}
}

// publish publishes a typed payload: the routing key comes from the
// payload's Go type (as the catalogue registered it), the payload is
// validated against the type's schema before it reaches the broker, and
// the envelope options set the id and the parents. T is inferred.
func publish[T any](ctx context.Context, b *bus.Bus, reg *domains.Registry, payload T, opts ...envelope.Option) (envelope.Envelope, error) {
	key, err := reg.RoutingKeyFor(payload)
	if err != nil {
		return envelope.Envelope{}, err
	}
	// An invalid value fails here, with its JSON path, instead of in every
	// consumer.
	if err := reg.ValidateValue(key, payload); err != nil {
		return envelope.Envelope{}, fmt.Errorf("cannot publish %s: %w", key, err)
	}
	env, err := envelope.New(key, payload, opts...)
	if err != nil {
		return envelope.Envelope{}, err
	}
	return env, b.Publish(ctx, env)
}

// source says who publishes: the recorder's file watcher.
var source = envelope.Source{Host: envelope.Hostname(), Type: envelope.TriggerFileWatch, App: "recording-watcher"}

func run(ctx context.Context, cfg bus.Config, logger *slog.Logger, out io.Writer) error {
	reg, err := catalog.New()
	if err != nil {
		return err
	}
	b, err := bus.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	// A consumer, to show what arrives. It listens before anything is
	// published: an event nobody is bound to yet is unroutable, and lost.
	received, stopWatching, err := watch(ctx, b, "fireflies.transcript.*")
	if err != nil {
		return err
	}
	defer stopWatching()

	// 1. The upload request. Its id is what Python's
	//    generate_event_id("fireflies.transcript.upload", meeting_id="abc123")
	//    returns, so a Go and a Python producer of this fact agree on it.
	uploadID, err := envelope.DeterministicID(fireflies.RoutingKeyTranscriptUpload, map[string]any{"meeting_id": "abc123"})
	if err != nil {
		return err
	}
	upload := fireflies.TranscriptUpload{
		MediaFile:            "/recordings/2026-01-29-standup.mp4",
		MediaDurationSeconds: 930,
		MediaType:            "video/mp4",
		Title:                new("Team standup"),
		UserID:               new("user_456"),
	}
	// Published twice, as a watcher restarted mid-upload would: one fact,
	// one id, and consumers that deduplicate on event_id drop the second.
	for range 2 {
		env, err := publish(ctx, b, reg, upload, envelope.WithEventID(uploadID), envelope.WithSource(source))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "published %s %s\n", env.EventType, env.EventID)
	}

	// 2. The transcript it led to, linked to the upload: correlation_ids =
	//    [upload id]. Its id is derived from the transcript id.
	ready := fireflies.SampleTranscriptReady(3)
	ready.ID = "tr-abc123"
	env, err := publish(ctx, b, reg, ready,
		envelope.WithEventID(envelope.DeterministicIDOf(fireflies.RoutingKeyTranscriptReady, envelope.StrField("transcript_id", ready.ID))),
		envelope.WithCorrelationIDs(uploadID),
		envelope.WithSource(envelope.Source{Host: envelope.Hostname(), Type: envelope.TriggerHook, App: "fireflies-webhook"}))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "published %s %s, parent %s\n", env.EventType, env.EventID, uploadID)

	// 3. A payload the schema refuses never leaves the process. Go's types
	//    catch most mistakes at compile time; an enumeration they cannot.
	_, err = publish(ctx, b, reg, fireflies.TranscriptFailed{FailedStage: "uploading", ErrorMessage: "disk full"})
	if err == nil {
		return fmt.Errorf("an invalid failed_stage was published")
	}
	fmt.Fprintf(out, "rejected before publishing: %v\n", err)

	// What the consumer got, in order (it runs one delivery at a time).
	for range 3 {
		select {
		case e := <-received:
			fmt.Fprintf(out, "received %s %s correlation_ids %v source %s/%s\n", e.EventType, e.EventID, e.CorrelationIDs, e.Source.Type, e.Source.App)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// watch subscribes a temporary queue (deleted when the program ends) to
// pattern, and sends the envelopes it receives on the returned channel.
func watch(ctx context.Context, b *bus.Bus, pattern string) (<-chan envelope.Envelope, func(), error) {
	queue := "typed-publisher-demo." + uuid.NewString()
	sub, err := b.TemporarySubscriber(transport.SubscriberConfig{
		QueueName: func(string) string { return queue },
		Consumers: 1, // in the order the queue holds them
	})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	msgs, err := sub.Subscribe(ctx, pattern)
	if err != nil {
		cancel()
		_ = sub.Close()
		return nil, nil, err
	}
	envs := make(chan envelope.Envelope)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range msgs {
			env, err := envelope.FromMessage(msg)
			msg.Ack()
			if err != nil {
				continue
			}
			select {
			case envs <- env:
			case <-ctx.Done():
			}
		}
	}()
	return envs, func() {
		cancel()
		_ = sub.Close()
		<-done
	}, nil
}
