// Command middleware-reuse shows Bloodbank's middleware in a plain Watermill
// app: a message.Router on Watermill's in-memory GoChannel, with no
// bus.Bus and no bus.Service. Every piece is an ordinary Watermill
// HandlerMiddleware or PublisherDecorator:
//
//   - Poison parks what cannot be handled in a poison topic, with the reason;
//   - Retry retries transient errors with backoff, and never permanent ones;
//   - Validate rejects an invalid payload, naming the JSON path at fault,
//     before the handler sees it, as a permanent error;
//   - Causation and RecordingPublisherDecorator link what the handler
//     returns to the event it handled and record the link.
//
// It publishes four transcripts (one fine, one that fails once, one whose
// vector store is down, one invalid), prints what happened to each and
// exits. It never talks to RabbitMQ, whatever RABBIT_URL says: the point is
// that the middleware needs no Bloodbank transport. On RabbitMQ, a plain
// Watermill app uses watermill-amqp instead of GoChannel, with
// envelope.Codec{} as its Marshaler and amqp.TopologyBuilder as its
// TopologyBuilder (without it the queue is bound to its own name and receives
// nothing), and the same middleware: examples/watermill-amqp shows it.
package main

import (
	"context"
	"encoding/json"
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
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/domains/fireflies"
	"github.com/33god/bloodbank-go/middleware"
)

// Topics of this app. On a Bloodbank bus the first two are routing keys;
// the poison topic follows the PoisonQueueName convention of a service.
const (
	topicReady     = fireflies.RoutingKeyTranscriptReady
	topicProcessed = fireflies.RoutingKeyTranscriptProcessed
	topicPoison    = "rag_ingest.poison"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(ctx, logger, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "middleware-reuse:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, out io.Writer) error {
	wlogger := watermill.NewSlogLogger(logger)
	// BlockPublishUntilSubscriberAck makes a publish return once the router
	// acked the message (after its retries, or its parking), so the demo's
	// output comes in order. The other two topics buffer for the reader.
	events := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, wlogger)
	results := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16}, wlogger)
	defer events.Close()
	defer results.Close()
	processed, err := results.Subscribe(ctx, topicProcessed)
	if err != nil {
		return err
	}
	parked, err := results.Subscribe(ctx, topicPoison)
	if err != nil {
		return err
	}

	// The pieces, each built from its config.
	reg, err := catalog.New()
	if err != nil {
		return err
	}
	validation, err := middleware.NewValidation(middleware.ValidationConfig{Validator: reg, Logger: logger})
	if err != nil {
		return err
	}
	retry, err := middleware.NewRetry(middleware.RetryConfig{
		MaxAttempts:     3,
		InitialInterval: 10 * time.Millisecond,
		NoJitter:        true, // exact waits, for a demo whose output does not vary
		OnRetry: func(p middleware.RetryParams) {
			fmt.Fprintf(out, "  retry: attempt %d of %s failed (%v); next in %v\n", p.Attempt, p.Message.UUID, p.Err, p.Delay)
		},
		Logger: logger,
	})
	if err != nil {
		return err
	}
	// The poison topic is on the results Pub/Sub: a parking publish must
	// not wait for the router that is busy with the message it parks.
	poison, err := middleware.NewPoison(middleware.PoisonConfig{Publisher: results, Queue: topicPoison, Service: "rag_ingest", Logger: logger})
	if err != nil {
		return err
	}
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{}) // a correlation.RedisStore in production
	if err != nil {
		return err
	}
	defer store.Close()
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{Logger: logger})
	if err != nil {
		return err
	}
	defer rec.Close(context.Background())

	router, err := message.NewRouter(message.RouterConfig{}, wlogger)
	if err != nil {
		return err
	}
	// What handlers return is linked (Causation) and, once published,
	// recorded in the correlation graph (the decorator).
	router.AddPublisherDecorators(middleware.RecordingPublisherDecorator(rec))
	// Outermost first, the architecture's order: Poison sees what Retry gave
	// up on; Retry sees Validate's permanent errors and does not retry them;
	// Causation gives the handler's context the event it handles.
	router.AddMiddleware(poison.Middleware, retry.Middleware, validation.Middleware, middleware.Causation)
	router.AddHandler("ingest_transcript", topicReady, events, topicProcessed, results, vectorStore{}.ingest)

	routerCtx, stopRouter := context.WithCancel(ctx)
	defer stopRouter()
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(routerCtx) }()
	select {
	case <-router.Running():
	case err := <-routerDone:
		return err
	}

	for _, t := range demoTranscripts() {
		msg, err := readyMessage(t.id, t.payload)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: transcript %s\n", msg.UUID, t.id)
		// Returns once the router acked it: handled, or parked.
		if err := events.Publish(topicReady, msg); err != nil {
			return err
		}
		select {
		case p := <-processed:
			p.Ack()
			parents, err := store.Parents(ctx, uuid.MustParse(p.UUID))
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "  processed: %s, correlation_ids %v, recorded parents %v\n", p.UUID, envelope.CorrelationIDs(p), parents)
		case p := <-parked:
			p.Ack()
			fmt.Fprintf(out, "  parked in %s: kind %s after %s attempt(s): %s\n", topicPoison,
				p.Metadata.Get(middleware.HeaderPoisonKind), p.Metadata.Get(middleware.HeaderPoisonAttempts),
				p.Metadata.Get(middleware.HeaderPoisonReason))
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	// Validate runs inside Retry, so once per attempt: 1 + 2 + 3 valid.
	fmt.Fprintf(out, "validation %+v\nretry %+v\npoison %+v\n", validation.Stats(), retry.Stats(), poison.Stats())
	stopRouter()
	return <-routerDone
}

// vectorStore stands in for a RAG store client: transcript "tr-flaky"
// times out on its first attempt, and "tr-down" on every attempt.
type vectorStore struct{}

// errTimeout is a transient error: Retry tries again.
var errTimeout = errors.New("vector store timeout")

func (vectorStore) ingest(msg *message.Message) ([]*message.Message, error) {
	var t fireflies.TranscriptReady
	if err := json.Unmarshal(msg.Payload, &t); err != nil {
		// Validate ran first, so this cannot be a bad payload; if it were,
		// retrying would not fix it.
		return nil, envelope.Permanent(err)
	}
	switch {
	case t.ID == "tr-down",
		t.ID == "tr-flaky" && middleware.AttemptFromCtx(msg.Context()) == 1:
		return nil, errTimeout
	}
	env, err := envelope.New(topicProcessed, fireflies.TranscriptProcessed{
		TranscriptID: t.ID, RAGDocumentID: "rag-" + t.ID, Title: t.Title, IngestionTimestamp: envelope.Now(),
		SentenceCount: len(t.Sentences), SpeakerCount: len(t.Speakers), DurationMinutes: t.Duration, VectorStore: "chroma",
	}, envelope.WithEventID(envelope.DeterministicIDOf(topicProcessed, envelope.StrField("transcript_id", t.ID))))
	if err != nil {
		return nil, err
	}
	// No correlation ids here: Causation stamps [the handled event's id].
	out, err := envelope.NewMessage(env)
	return []*message.Message{out}, err
}

type demoTranscript struct {
	id      string
	payload json.RawMessage
}

// demoTranscripts are four fireflies.transcript.ready payloads; the last
// has a string where the contract wants an array of sentences, as a buggy
// producer might send.
func demoTranscripts() []demoTranscript {
	var ts []demoTranscript
	for _, id := range []string{"tr-ok", "tr-flaky", "tr-down", "tr-bad"} {
		t := fireflies.SampleTranscriptReady(2)
		t.ID = id
		b, _ := json.Marshal(t)
		if id == "tr-bad" {
			var fields map[string]any
			_ = json.Unmarshal(b, &fields)
			fields["sentences"] = "see attachment"
			b, _ = json.Marshal(fields)
		}
		ts = append(ts, demoTranscript{id: id, payload: b})
	}
	return ts
}

// readyMessage is a transcript.ready event as a Watermill message: the
// envelope's fields in metadata, the payload as the message payload.
// The event id is derived from the transcript id, so the output is stable.
func readyMessage(transcriptID string, payload json.RawMessage) (*message.Message, error) {
	env, err := envelope.New(topicReady, payload,
		envelope.WithEventID(envelope.DeterministicIDOf(topicReady, envelope.StrField("transcript_id", transcriptID))))
	if err != nil {
		return nil, err
	}
	return envelope.NewMessage(env)
}
