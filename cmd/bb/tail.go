package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/topic"
	"github.com/33god/bloodbank-go/bus/transport"
)

// tailQueuePrefix names tail's queues: "bb.tail.<uuid>". They are exclusive
// and auto-deleted, so a tail leaves nothing behind on the broker; the prefix
// lets an operator recognise them in the management UI.
const tailQueuePrefix = "bb.tail."

func (a *app) tailCommand() *cobra.Command {
	var pretty bool
	var count int
	cmd := &cobra.Command{
		Use:   "tail [PATTERN...]",
		Short: "Print the events on the bus as they arrive",
		Long: `Print every event whose routing key matches one of the binding patterns
(default '#', everything), as it arrives, until SIGINT or SIGTERM (exit 0) or
until --count events were printed.

A pattern is AMQP topic syntax: words separated by '.', '*' matches exactly
one word, '#' zero or more. bb tail consumes from its own exclusive queue
(bb.tail.<uuid>), deleted when it exits, so it takes nothing away from the
services' queues. Only events published after it starts are seen.

Each event is printed as one line of compact v1 envelope JSON, as it travelled;
--pretty prints one readable line instead. A message whose body is not a v1
envelope is printed as a line saying so, with the reason (in JSON mode:
{"malformed": true, "reason": ..., "routing_key": ..., "message_id": ..., "body": ...}).
Needs RABBIT_URL (exit 2 without it).`,
		Example: `  bb tail
  bb tail 'fireflies.#' 'agent.thread.*' --pretty
  bb tail 'agent.thread.response' --count 1 | jq .payload`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runTail(cmd.Context(), args, count, pretty)
		},
	}
	cmd.Flags().BoolVar(&pretty, "pretty", false, "print one readable line per event instead of JSON")
	cmd.Flags().IntVar(&count, "count", 0, "exit after printing `N` events (0: run until interrupted)")
	return cmd
}

// tailItem is one message received by the subscription of patterns[index].
type tailItem struct {
	index int
	msg   *message.Message
}

func (a *app) runTail(ctx context.Context, args []string, count int, pretty bool) error {
	if count < 0 {
		return usageErrorf("--count must be 0 (no limit) or more, got %d", count)
	}
	patterns, err := tailPatterns(args)
	if err != nil {
		return err
	}
	cfg, logger, b, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer b.Close()

	queue := tailQueuePrefix + uuid.NewString()
	sub, err := b.TemporarySubscriber(transport.SubscriberConfig{
		QueueName: func(string) string { return queue },
		Patterns:  patterns,
		// One consumer keeps the events in the order the queue holds them.
		Consumers: 1,
		Prefetch:  100,
		Logger:    logger,
	})
	if err != nil {
		return infraErrorf("cannot subscribe: %v", err)
	}
	defer sub.Close()

	subCtx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	chans, err := bus.SubscribeAll(subCtx, sub, patterns, a.timeout)
	if err != nil {
		return infraErrorf("cannot bind the tail queue on %s: %v\ncheck that the broker is up and that the user may declare queues and bind them to exchange %q, or raise --timeout",
			amqp.RedactURL(cfg.Bus.RabbitURL), err, cfg.Bus.ExchangeName)
	}
	logger.Info("tail: listening", slog.String("exchange", cfg.Bus.ExchangeName), slog.String("queue", queue),
		slog.Any("patterns", patterns))

	// One goroutine per subscription feeds a single loop, which prints and
	// acks. done makes the feeders nack what they still hold once the loop
	// ends, so that closing the subscriber never waits on them.
	items := make(chan tailItem)
	done := make(chan struct{})
	defer close(done)
	for i, ch := range chans {
		go func() {
			for msg := range ch {
				select {
				case items <- tailItem{i, msg}:
				case <-done:
					msg.Nack()
				}
			}
		}()
	}

	printed := 0
	for {
		select {
		case <-ctx.Done():
			return nil // SIGINT or SIGTERM: a normal end
		case it := <-items:
			// A delivery matching several patterns reaches every matching
			// subscription; print it once, from the first.
			first := firstMatch(patterns, routingKeyOf(it.msg))
			if first < 0 || first == it.index {
				if err := a.printEvent(it.msg, pretty); err != nil {
					it.msg.Nack()
					return err
				}
				printed++
			}
			it.msg.Ack()
			if count > 0 && printed >= count {
				return nil
			}
		}
	}
}

// tailPatterns checks the binding patterns, dropping repeats.
func tailPatterns(args []string) ([]string, error) {
	if len(args) == 0 {
		return []string{"#"}, nil
	}
	var patterns []string
	for _, p := range args {
		if _, err := topic.Compile(p); err != nil {
			return nil, usageErrorf("bad pattern %q: %v (e.g. 'fireflies.#' or 'agent.thread.*')", p, err)
		}
		if !slices.Contains(patterns, p) {
			patterns = append(patterns, p)
		}
	}
	return patterns, nil
}

func firstMatch(patterns []string, key string) int {
	for i, p := range patterns {
		if topic.Match(p, key) {
			return i
		}
	}
	return -1
}

func routingKeyOf(msg *message.Message) string {
	if k := msg.Metadata.Get(envelope.MetaRoutingKey); k != "" {
		return k
	}
	return envelope.EventType(msg)
}

// printEvent writes one line for msg on stdout.
func (a *app) printEvent(msg *message.Message, pretty bool) error {
	var line []byte
	env, err := envelope.FromMessage(msg)
	switch {
	case err != nil && pretty:
		line = fmt.Appendf(nil, "MALFORMED  routing_key=%s  message_id=%s  reason: %s  body: %s",
			orDash(routingKeyOf(msg)), orDash(msg.UUID), err, truncate(string(msg.Payload), 120))
	case err != nil:
		line, err = marshalLine(map[string]any{
			"malformed":   true,
			"reason":      err.Error(),
			"routing_key": routingKeyOf(msg),
			"message_id":  msg.UUID,
			"body":        bodyString(msg.Payload),
		})
		if err != nil {
			return fmt.Errorf("cannot print a malformed message: %w", err)
		}
	case pretty:
		line = []byte(prettyLine(env))
	default:
		if line, err = env.MarshalJSON(); err != nil {
			return fmt.Errorf("cannot print event %s: %w", env.EventID, err)
		}
	}
	line = append(line, '\n')
	if _, err := a.stdout.Write(line); err != nil {
		// stdout closed (e.g. piped into head): nothing more to do.
		return fmt.Errorf("cannot write to stdout: %w", err)
	}
	return nil
}

// marshalLine encodes v as compact JSON without HTML escaping.
func marshalLine(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// bodyString is a body as text when it is UTF-8, else a note of its size.
func bodyString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("(%d bytes, not UTF-8)", len(b))
}

// prettyLine is one readable line: time, type, id, source, parents, and the
// payload's top-level fields, shortened.
func prettyLine(env envelope.Envelope) string {
	var sb strings.Builder
	sb.WriteString(envelope.FormatTimestamp(env.Timestamp))
	sb.WriteString("  ")
	sb.WriteString(env.EventType)
	sb.WriteString("  ")
	sb.WriteString(env.EventID.String())
	sb.WriteString("  from ")
	if env.Source.App != "" {
		sb.WriteString(env.Source.App + "@")
	}
	sb.WriteString(env.Source.Host + " (" + string(env.Source.Type) + ")")
	if len(env.CorrelationIDs) > 0 {
		ids := make([]string, len(env.CorrelationIDs))
		for i, id := range env.CorrelationIDs {
			ids[i] = id.String()
		}
		sb.WriteString("  caused by " + strings.Join(ids, ","))
	}
	sb.WriteString("  ")
	sb.WriteString(payloadSummary(env.Payload, 160))
	return sb.String()
}

// payloadSummary renders a payload's top-level fields as key=value, each
// value shortened, the whole at most limit characters.
func payloadSummary(payload []byte, limit int) string {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return truncate(string(payload), limit)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := fields[k]
		if string(v) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			v = marshalString(truncate(s, 40))
		} else if len(v) > 40 {
			v = append(append([]byte{}, v[:1]...), []byte("…")...)
			switch v[0] {
			case '[':
				v = append(v, ']')
			case '{':
				v = append(v, '}')
			}
		}
		parts = append(parts, k+"="+string(v))
	}
	return truncate("{"+strings.Join(parts, " ")+"}", limit)
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
