// Command rag-ingest is a Bloodbank service with declarative handlers: it
// consumes fireflies.transcript.ready, "ingests" each transcript into a RAG
// store, and publishes fireflies.transcript.processed, or
// fireflies.transcript.failed for a transcript it cannot ingest. What it
// publishes is linked to the transcript that caused it, and the link is
// recorded in the correlation graph that Go and Python services share.
//
// By default it runs a demo: it starts the service, publishes three
// transcripts, waits until each has been answered, prints the correlation
// graph and exits. With -serve it only runs the service, until SIGINT or
// SIGTERM.
//
// Without RABBIT_URL everything runs in this process (the embedded
// transport and an embedded correlation store). With RABBIT_URL the service
// joins the bus and records links in the Redis of REDIS_HOST/REDIS_URL.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/lmittmann/tint"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"golang.org/x/term"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/domains/fireflies"
	"github.com/33god/bloodbank-go/middleware"
)

// serviceName names the service queue, bloodbank.events.v1.rag_ingest.
// It is part of the contract: renaming it moves the service to a new,
// empty queue while the old one keeps filling up. The demo runs under
// demoServiceName instead, and deletes that queue when it is done, so that
// it never touches the queue of a real rag_ingest service.
const (
	serviceName     = "rag_ingest"
	demoServiceName = "rag_ingest_demo"
)

func main() {
	serve := flag.Bool("serve", false, "run the service until interrupted instead of the demo")
	flag.Parse()
	if err := mainErr(*serve); err != nil {
		fmt.Fprintln(os.Stderr, "rag-ingest:", err)
		os.Exit(1)
	}
}

func mainErr(serve bool) error {
	// Readable lines on stderr, colored on a terminal.
	logger := slog.New(tint.NewTextHandler(os.Stderr, &tint.Options{NoColor: !term.IsTerminal(int(os.Stderr.Fd()))}))
	cfg, err := bus.LoadConfig(os.Environ(), ".env")
	if err != nil {
		return err
	}
	redisSettings, err := correlation.LoadSettings(os.Environ(), ".env")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	store, closeStore, err := openStore(cfg, redisSettings)
	if err != nil {
		return err
	}
	defer closeStore()
	return run(ctx, cfg, store, logger, os.Stdout, !serve)
}

// openStore opens the correlation store the settings ask for: the shared
// Redis when the service is on the real bus, so that Python services see
// the links; an in-process one otherwise.
func openStore(cfg bus.Config, redisSettings correlation.Settings) (correlation.Store, func(), error) {
	if cfg.Embedded() {
		store, err := correlation.NewEmbeddedStore(redisSettings.RedisConfig())
		if err != nil {
			return nil, nil, err
		}
		return store, func() { _ = store.Close() }, nil
	}
	client, err := correlation.NewUniversalClient(redisSettings)
	if err != nil {
		return nil, nil, err
	}
	store, err := correlation.NewRedisStore(client, redisSettings.RedisConfig())
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	return store, func() { _ = client.Close() }, nil
}

// run runs the service, and the demo when demo is set, on the bus the
// settings describe; it prints what the demo shows on out.
func run(ctx context.Context, cfg bus.Config, store correlation.Store, logger *slog.Logger, out io.Writer, demo bool) error {
	b, err := bus.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	// Every event the bus publishes, and whose parents are known, is
	// recorded in the graph once the broker confirmed it. The Recorder never
	// fails or stalls a publish: a Redis that is away costs a warning.
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{Logger: logger})
	if err != nil {
		return err
	}
	defer rec.Close(context.Background())
	b.DecoratePublisher(func(p message.Publisher) message.Publisher {
		return middleware.NewRecordingPublisher(p, rec)
	})

	if !demo {
		svc, err := newService(b, serviceName, logger)
		if err != nil {
			return err
		}
		return svc.Run(ctx)
	}
	svc, err := newService(b, demoServiceName, logger)
	if err != nil {
		return err
	}
	if err := runDemo(ctx, b, svc, store, out); err != nil {
		return err
	}
	return deleteQueue(ctx, b, svc.QueueName())
}

// newService declares the service: its middleware and its handlers.
func newService(b *bus.Bus, name string, logger *slog.Logger) (*bus.Service, error) {
	reg, err := catalog.New()
	if err != nil {
		return nil, err
	}
	// Validation keeps an invalid transcript (a Python producer's bug) from
	// ever reaching the handler, and marks it permanent so it is not
	// retried. A production service adds reliability.Use first
	// (retries, a poison queue); examples/middleware-reuse shows them.
	validation, err := middleware.NewValidation(middleware.ValidationConfig{Validator: reg, Logger: logger})
	if err != nil {
		return nil, err
	}
	svc, err := b.NewService(name)
	if err != nil {
		return nil, err
	}
	svc.Use(validation.Middleware)

	ingester := &ingester{bus: b, vectorStore: "chroma"}
	// The handler name is part of the contract too: it names the handler in
	// logs, metrics and parked messages.
	if err := bus.Handle(svc, "ingest_transcript", fireflies.RoutingKeyTranscriptReady, ingester.handle); err != nil {
		return nil, err
	}
	return svc, nil
}

// ingester is the handler's state: what a real service would hold (a
// vector store client, an embedding model).
type ingester struct {
	bus         *bus.Bus
	vectorStore string
}

// handle ingests one transcript. It publishes with ctx, the context the
// framework gives it, so that what it publishes gets correlation_ids =
// [this transcript's event id] and is recorded as its child.
func (in *ingester) handle(ctx context.Context, ev bus.Event[fireflies.TranscriptReady]) error {
	t := ev.Payload
	if len(t.Sentences) == 0 {
		// Retrying cannot produce sentences: say so on the bus, where the
		// Python side and `bb tail` see it, and ack.
		failed, err := envelope.New(fireflies.RoutingKeyTranscriptFailed, fireflies.TranscriptFailed{
			FailedStage:  fireflies.StageProcessing,
			ErrorMessage: "transcript has no sentences",
			ErrorCode:    new("empty_transcript"),
			TranscriptID: new(t.ID),
			IsRetryable:  new(false),
		}, envelope.WithEventID(derivedID(fireflies.RoutingKeyTranscriptFailed, t.ID)))
		if err != nil {
			return err
		}
		return in.bus.Publish(ctx, failed)
	}

	// Here a real consumer would chunk, embed and upsert the sentences,
	// keyed by transcript id so that a redelivery overwrites instead of
	// duplicating.
	speakers := map[int]bool{}
	for _, s := range t.Sentences {
		speakers[s.SpeakerID] = true
	}
	processed, err := envelope.New(fireflies.RoutingKeyTranscriptProcessed, fireflies.TranscriptProcessed{
		TranscriptID:       t.ID,
		RAGDocumentID:      "rag-" + t.ID,
		Title:              t.Title,
		IngestionTimestamp: envelope.Now(),
		SentenceCount:      len(t.Sentences),
		SpeakerCount:       len(speakers),
		DurationMinutes:    t.Duration,
		VectorStore:        in.vectorStore,
		ChunkCount:         (len(t.Sentences) + 9) / 10,
		EmbeddingModel:     new("text-embedding-3-small"),
	}, envelope.WithEventID(derivedID(fireflies.RoutingKeyTranscriptProcessed, t.ID)))
	if err != nil {
		return err
	}
	return in.bus.Publish(ctx, processed)
}

// derivedID is the event id of what the service publishes about a
// transcript. It is deterministic: a redelivered transcript.ready yields the
// same id again, and consumers that deduplicate on event_id drop the repeat.
func derivedID(eventType, transcriptID string) uuid.UUID {
	return envelope.DeterministicIDOf(eventType, envelope.StrField("transcript_id", transcriptID))
}

// runDemo runs the service, publishes three transcripts (one of them
// empty), waits until each has been answered on the bus, stops the service
// and prints what the correlation graph says.
func runDemo(ctx context.Context, b *bus.Bus, svc *bus.Service, store correlation.Store, out io.Writer) error {
	// A watcher on the answers, as a downstream consumer would be. Its
	// queue is temporary: nothing is left on the broker after the demo.
	answers, stopWatching, err := watch(ctx, b, fireflies.RoutingKeyTranscriptProcessed, fireflies.RoutingKeyTranscriptFailed)
	if err != nil {
		return err
	}
	defer stopWatching()

	svcCtx, stopService := context.WithCancel(ctx)
	defer stopService()
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.Run(svcCtx) }()
	select {
	case <-svc.Running(): // bound to its patterns: nothing published now is unroutable
	case err := <-svcDone:
		return fmt.Errorf("service stopped before it ran: %w", err)
	}

	transcripts := demoTranscripts()
	readyIDs := make([]uuid.UUID, len(transcripts))
	for i, t := range transcripts {
		// The id Fireflies' webhook handler would derive from the
		// transcript id, so the same webhook delivered twice is one event.
		readyIDs[i] = derivedID(fireflies.RoutingKeyTranscriptReady, t.ID)
		env, err := envelope.New(fireflies.RoutingKeyTranscriptReady, t, envelope.WithEventID(readyIDs[i]),
			envelope.WithSource(envelope.Source{Host: envelope.Hostname(), Type: envelope.TriggerHook, App: "fireflies-webhook"}))
		if err != nil {
			return err
		}
		if err := b.Publish(ctx, env); err != nil {
			return err
		}
		fmt.Fprintf(out, "published %s %s (transcript %s, %d sentences)\n", env.EventType, env.EventID, t.ID, len(t.Sentences))
	}

	// Wait for one answer per transcript. An answer from an earlier run
	// (a durable queue on RabbitMQ keeps them) is not one of ours: skip it.
	want := map[uuid.UUID]bool{}
	for _, t := range transcripts {
		want[derivedID(fireflies.RoutingKeyTranscriptProcessed, t.ID)] = true
		want[derivedID(fireflies.RoutingKeyTranscriptFailed, t.ID)] = true
	}
	seen := map[uuid.UUID]envelope.Envelope{}
	for len(seen) < len(transcripts) {
		select {
		case env := <-answers:
			if want[env.EventID] {
				seen[env.EventID] = env
			}
		case err := <-svcDone:
			return fmt.Errorf("service stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	// Stop the service: Run returns once in-flight handlers are done, so
	// every link they recorded is written before we read the graph.
	stopService()
	if err := <-svcDone; err != nil {
		return err
	}

	fmt.Fprintln(out, "correlation graph:")
	for i, t := range transcripts {
		children, err := store.Children(ctx, readyIDs[i])
		if err != nil {
			return err
		}
		for _, child := range children {
			parents, err := store.Parents(ctx, child)
			if err != nil {
				return err
			}
			md, err := store.Metadata(ctx, child)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "  %s %s → %s %v, parents %v\n", t.ID, readyIDs[i], md["event_type"], child, parents)
		}
	}
	return nil
}

// deleteQueue deletes the demo's durable service queue on RabbitMQ, so
// that the demo leaves nothing bound to the exchange. The embedded broker
// goes away with the process.
func deleteQueue(ctx context.Context, b *bus.Bus, queue string) error {
	if b.Transport() != bus.TransportAMQP {
		return nil
	}
	return b.WithChannel(ctx, func(ch *amqp091.Channel) error {
		_, err := ch.QueueDelete(queue, false, false, false)
		return err
	})
}

// watch subscribes a temporary queue to patterns and sends the envelopes
// it receives on the returned channel.
func watch(ctx context.Context, b *bus.Bus, patterns ...string) (<-chan envelope.Envelope, func(), error) {
	queue := "rag-ingest-demo." + uuid.NewString()
	sub, err := b.TemporarySubscriber(transport.SubscriberConfig{
		QueueName: func(string) string { return queue },
		Patterns:  patterns,
	})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	envs := make(chan envelope.Envelope)
	var wg sync.WaitGroup
	for _, p := range patterns {
		msgs, err := sub.Subscribe(ctx, p)
		if err != nil {
			cancel()
			_ = sub.Close()
			return nil, nil, err
		}
		wg.Go(func() {
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
		})
	}
	return envs, func() {
		cancel()
		_ = sub.Close()
		wg.Wait()
	}, nil
}

// demoTranscripts are two transcripts to ingest and an empty one.
func demoTranscripts() []fireflies.TranscriptReady {
	standup := fireflies.SampleTranscriptReady(12)
	standup.ID, standup.Title = "tr-standup-0129", "Team standup"
	retro := fireflies.SampleTranscriptReady(5)
	retro.ID, retro.Title = "tr-retro-0130", "Sprint retro"
	empty := fireflies.SampleTranscriptReady(0)
	empty.ID, empty.Title = "tr-silent-0131", "Muted call"
	return []fireflies.TranscriptReady{standup, retro, empty}
}
