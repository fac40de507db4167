// Command audit-log is a consumer bound to "#": it receives every event
// on the bus and writes each as one JSON line, the v1 envelope exactly as it
// travels, so the log can be searched with jq and any line replayed.
// A body that is not an envelope is written too, as a line saying why.
//
// By default it runs a demo: it publishes three events of different
// domains, waits until they are logged, and exits. With -serve it logs
// until SIGINT or SIGTERM. -o FILE appends to a file instead of stdout.
//
// Without RABBIT_URL it runs on the embedded in-process transport; with
// RABBIT_URL it logs the real bus. Its queue, bloodbank.events.v1.audit_log,
// is durable: events published while the auditor is down wait for it,
// which is what an audit log wants. Delete the queue when retiring it, or
// it keeps every event.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/lmittmann/tint"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"golang.org/x/term"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/artifact"
	"github.com/33god/bloodbank-go/domains/github"
)

// serviceName names the durable queue bloodbank.events.v1.audit_log. The
// demo runs under demoServiceName instead, and deletes that queue when it
// is done: a durable queue bound to "#" that nobody consumes would keep
// every event of the bus.
const (
	serviceName     = "audit_log"
	demoServiceName = "audit_log_demo"
)

func main() {
	serve := flag.Bool("serve", false, "log the bus until interrupted instead of running the demo")
	file := flag.String("o", "", "append the log to this file instead of stdout")
	flag.Parse()
	if err := mainErr(*serve, *file); err != nil {
		fmt.Fprintln(os.Stderr, "audit-log:", err)
		os.Exit(1)
	}
}

func mainErr(serve bool, file string) error {
	// Readable lines on stderr, colored on a terminal.
	logger := slog.New(tint.NewTextHandler(os.Stderr, &tint.Options{NoColor: !term.IsTerminal(int(os.Stderr.Fd()))}))
	cfg, err := bus.LoadConfig(os.Environ(), ".env")
	if err != nil {
		return err
	}
	var out io.Writer = os.Stdout
	if file != "" {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cfg, logger, out, !serve)
}

// run runs the auditor, and the demo when demo is set.
func run(ctx context.Context, cfg bus.Config, logger *slog.Logger, out io.Writer, demo bool) error {
	// One delivery at a time: the log keeps the order the queue holds
	// events in. An auditor that must keep up with a busy bus raises it and
	// sorts by timestamp when reading.
	cfg.Consumers = 1
	b, err := bus.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	auditor := &auditor{w: out, logged: make(chan uuid.UUID, 16)}
	name := serviceName
	if demo {
		name = demoServiceName
	}
	svc, err := b.NewService(name)
	if err != nil {
		return err
	}
	// HandleMessage, not bus.Handle: the auditor wants every message as it
	// came, including those that are not valid events.
	if err := svc.HandleMessage("audit_log", "#", auditor.handle); err != nil {
		return err
	}
	if !demo {
		return svc.Run(ctx)
	}

	svcCtx, stopService := context.WithCancel(ctx)
	defer stopService()
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.Run(svcCtx) }()
	select {
	case <-svc.Running():
	case err := <-svcDone:
		return fmt.Errorf("service stopped before it ran: %w", err)
	}

	events, err := demoEvents()
	if err != nil {
		return err
	}
	want := map[uuid.UUID]bool{}
	for _, env := range events {
		want[env.EventID] = true
	}
	if err := b.Publish(ctx, events...); err != nil {
		return err
	}
	// Wait for our three. On a shared bus other events are logged too.
	for len(want) > 0 {
		select {
		case id := <-auditor.logged:
			delete(want, id)
		case err := <-svcDone:
			return fmt.Errorf("service stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	stopService()
	if err := <-svcDone; err != nil {
		return err
	}
	return deleteQueue(ctx, b, svc.QueueName())
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

// auditor writes one line per message.
type auditor struct {
	mu     sync.Mutex
	w      io.Writer
	logged chan uuid.UUID // ids logged, for the demo; never blocks
}

// handle logs msg. A failed write is returned, so the message is not acked
// and comes back: an audit log must not lose events silently.
func (a *auditor) handle(msg *message.Message) error {
	line, err := auditLine(msg)
	if err != nil {
		return envelope.Permanent(err)
	}
	a.mu.Lock()
	_, err = a.w.Write(line)
	a.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cannot write audit line: %w", err)
	}
	if id, err := uuid.Parse(msg.UUID); err == nil {
		select {
		case a.logged <- id:
		default:
		}
	}
	return nil
}

// auditLine renders a message as one line of JSON: the envelope, or, for
// a body that is not one, what the codec found wrong and the body as text.
func auditLine(msg *message.Message) ([]byte, error) {
	var v any
	if reason, bad := envelope.Malformed(msg); bad {
		v = struct {
			Malformed  string `json:"malformed"`
			MessageID  string `json:"message_id"`
			RoutingKey string `json:"routing_key"`
			Body       string `json:"body"`
		}{reason, msg.UUID, msg.Metadata.Get(envelope.MetaRoutingKey), string(msg.Payload)}
	} else {
		env, err := envelope.FromMessage(msg)
		if err != nil {
			return nil, err
		}
		v = env
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	// The payload is kept as the producer wrote it, which may span lines
	// (a pretty-printing Python producer): compact it into one.
	var line bytes.Buffer
	if err := json.Compact(&line, b); err != nil {
		return nil, err
	}
	line.WriteByte('\n')
	return line.Bytes(), nil
}

// demoEvents are three events from three domains, with fixed ids, times
// and hosts so that the demo's log never varies.
func demoEvents() ([]envelope.Envelope, error) {
	at := time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC)
	prompt, err := envelope.New(thread.RoutingKeyPrompt, thread.Prompt{Provider: "anthropic", Prompt: "Summarise the standup", Tags: []string{"meetings"}},
		envelope.WithEventID(uuid.MustParse("0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11")), envelope.WithTimestamp(at),
		envelope.WithSource(envelope.Source{Host: "laptop-7", Type: envelope.TriggerManual, App: "bb"}))
	if err != nil {
		return nil, err
	}
	pr, err := envelope.New(github.RoutingKeyPRCreated, github.PRCreated{CacheKey: "bloodbank-go|42", CacheType: github.CacheRedis},
		envelope.WithEventID(envelope.DeterministicIDOf(github.RoutingKeyPRCreated,
			envelope.StrField("repo_owner", "33god"), envelope.StrField("repo_name", "bloodbank-go"), envelope.IntField("pr_number", 42))),
		envelope.WithTimestamp(at.Add(time.Second)),
		envelope.WithSource(envelope.Source{Host: "ci-runner-2", Type: envelope.TriggerHook, App: "github-webhook"}))
	if err != nil {
		return nil, err
	}
	art, err := envelope.New("artifact.created", artifact.Changed{Action: artifact.ActionCreated, Kind: "summary", URI: "s3://notes/standup-0129.md"},
		envelope.WithEventID(uuid.MustParse("5c3d2e1f-0a9b-4c8d-8e7f-6a5b4c3d2e1f")), envelope.WithTimestamp(at.Add(2*time.Second)),
		envelope.WithCorrelationIDs(prompt.EventID),
		envelope.WithSource(envelope.Source{Host: "laptop-7", Type: envelope.TriggerAgent, App: "summariser"}))
	if err != nil {
		return nil, err
	}
	return []envelope.Envelope{prompt, pr, art}, nil
}
