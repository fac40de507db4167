package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/topic"
)

// logIdle is how long bb log waits for the next delivery before it takes
// the log as read to its end: a stream consumer never says it caught up.
// The first delivery gets twice as long, for the broker to attach.
const logIdle = time.Second

// logSlack is how far before --since the read starts, and past --until it
// goes on. The stream seeks by the broker's clock, in whole seconds, while
// events are filtered by their own timestamps, written by each publisher's
// clock: the slack absorbs the rounding and a few seconds of skew.
const logSlack = 5 * time.Second

// logRange is what bb log and bb replay select from the log.
type logRange struct {
	since, until time.Time // zero: unbounded
	pattern      string    // empty: every routing key
	limit        int       // 0: no limit
}

func (a *app) logCommand() *cobra.Command {
	var since, until, pattern string
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Print the history kept in the event log, in order",
		Long: `Print the events kept in the event log, the stream queue
"{EXCHANGE_NAME}.log" that the command processor declares with
BB_EVENT_LOG=on, oldest first, then exit once the end of the log is reached
(no new event for about a second), or once --limit events were printed.

--since and --until take an RFC 3339 time (2024-05-01T12:00:00Z) or a
duration meaning that long ago (90s, 15m, 1h, 7d); an event is printed when its
envelope timestamp lies within them (both included). Without --since the
log is read from its first event. --pattern keeps the events whose routing
key matches an AMQP topic pattern ('*' one word, '#' zero or more).

Each event is one line: time, routing key, event id and the compact v1
envelope; --json prints the envelope alone, one per line. Reading the log
takes nothing away from it or from any queue. Needs RABBIT_URL (exit 2
without it, or when the broker has no event log); never Redis.`,
		Example: `  bb log --since 1h
  bb log --since 2024-05-01T12:00:00Z --until 2024-05-01T13:00:00Z --pattern 'agent.#'
  bb log --pattern agent.thread.response --json --limit 10 | jq .payload`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := parseLogRange(since, until, pattern, limit, time.Now())
			if err != nil {
				return err
			}
			return a.runLog(cmd.Context(), r, asJSON)
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "print events from `T` on: an RFC 3339 time or a duration ago (1h)")
	cmd.Flags().StringVar(&until, "until", "", "print events up to `T`: an RFC 3339 time or a duration ago")
	cmd.Flags().StringVar(&pattern, "pattern", "", "print only events whose routing key matches `PATTERN` (topic syntax)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one v1 envelope JSON per line")
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after `N` events (0: no limit)")
	return cmd
}

// parseLogRange checks the flags that select from the log.
func parseLogRange(since, until, pattern string, limit int, now time.Time) (logRange, error) {
	var r logRange
	var err error
	if r.since, err = parseWhen("--since", since, now); err != nil {
		return r, err
	}
	if r.until, err = parseWhen("--until", until, now); err != nil {
		return r, err
	}
	if !r.since.IsZero() && !r.until.IsZero() && r.until.Before(r.since) {
		return r, usageErrorf("--until (%s) is before --since (%s): swap them", envelope.FormatTimestamp(r.until), envelope.FormatTimestamp(r.since))
	}
	if pattern != "" {
		if _, err := topic.Compile(pattern); err != nil {
			return r, usageErrorf("bad --pattern %q: %v (e.g. 'fireflies.#' or 'agent.thread.*')", pattern, err)
		}
	}
	if limit < 0 {
		return r, usageErrorf("--limit must be 0 (no limit) or more, got %d", limit)
	}
	r.pattern, r.limit = pattern, limit
	return r, nil
}

// includes says whether an event of this routing key and time is selected.
func (r logRange) includes(key string, at time.Time) bool {
	if !r.since.IsZero() && at.Before(r.since) {
		return false
	}
	if !r.until.IsZero() && at.After(r.until) {
		return false
	}
	return r.pattern == "" || topic.Match(r.pattern, key)
}

// past says whether an event of this time lies so far beyond --until that
// nothing selected can follow it.
func (r logRange) past(at time.Time) bool {
	return !r.until.IsZero() && at.After(r.until.Add(logSlack))
}

// offset is the x-stream-offset the read starts from.
func (r logRange) offset() any {
	if r.since.IsZero() {
		return "first"
	}
	return r.since.Add(-logSlack)
}

func (a *app) runLog(ctx context.Context, r logRange, asJSON bool) error {
	return a.readLog(ctx, r, func(d amqp091.Delivery, env envelope.Envelope, decodeErr error) error {
		if asJSON {
			return a.printEvent(envelope.DecodeDelivery(d.Body, d.MessageId, d.RoutingKey, d.Headers), false)
		}
		return a.printLogLine(d, env, decodeErr)
	})
}

// readLog reads the event log of the settings' exchange in order and calls
// each with every event r selects. An event whose body is not a v1
// envelope is selected by its delivery's timestamp, and given with the
// decoding error.
func (a *app) readLog(ctx context.Context, r logRange, each func(d amqp091.Delivery, env envelope.Envelope, decodeErr error) error) error {
	cfg, _, b, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	queue := amqp.EventLogQueue(cfg.Bus.ExchangeName)

	err = b.WithChannel(ctx, func(ch *amqp091.Channel) error {
		if _, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil {
			if amqpErr, ok := errors.AsType[*amqp091.Error](err); ok && amqpErr.Code == amqp091.NotFound {
				return infraErrorf("there is no event log %q on the broker: run the command processor with BB_EVENT_LOG=on (with this EXCHANGE_NAME) to keep one", queue)
			}
			return infraErrorf("cannot find the event log %q: %v", queue, err)
		}
		// A stream consumer needs a prefetch and manual acks: the acks
		// are its credit, not a removal.
		if err := ch.Qos(500, 0, false); err != nil {
			return infraErrorf("cannot read the event log: %v", err)
		}
		deliveries, err := ch.Consume(queue, "", false, false, false, false, amqp091.Table{"x-stream-offset": r.offset()})
		if err != nil {
			return infraErrorf("cannot read the event log %q: %v", queue, err)
		}
		return readDeliveries(ctx, deliveries, r, each)
	})
	if err != nil {
		if _, classified := errors.AsType[*exitError](err); classified {
			return err
		}
		return infraErrorf("cannot read the event log %q: %v\ncheck that RabbitMQ is running, or raise --timeout", queue, err)
	}
	return nil
}

func readDeliveries(ctx context.Context, deliveries <-chan amqp091.Delivery, r logRange, each func(amqp091.Delivery, envelope.Envelope, error) error) error {
	idle := time.NewTimer(2 * logIdle)
	defer idle.Stop()
	selected := 0
	for {
		select {
		case <-ctx.Done():
			return nil // SIGINT or SIGTERM: a normal end
		case <-idle.C:
			return nil // the end of the log
		case d, ok := <-deliveries:
			if !ok {
				return infraErrorf("the broker closed the event log's channel")
			}
			idle.Reset(logIdle)
			_ = d.Ack(false)
			env, decodeErr := envelope.Decode(d.Body)
			at := env.Timestamp
			if decodeErr != nil {
				at = d.Timestamp
			}
			if r.past(at) {
				return nil
			}
			if !r.includes(d.RoutingKey, at) {
				continue
			}
			if err := each(d, env, decodeErr); err != nil {
				return err
			}
			selected++
			if r.limit > 0 && selected >= r.limit {
				return nil
			}
		}
	}
}

// printLogLine writes one event of the log as time, routing key, event id
// and compact envelope.
func (a *app) printLogLine(d amqp091.Delivery, env envelope.Envelope, decodeErr error) error {
	var line string
	if decodeErr != nil {
		at := "-"
		if !d.Timestamp.IsZero() {
			at = envelope.FormatTimestamp(d.Timestamp)
		}
		line = strings.Join([]string{at, orDash(d.RoutingKey), orDash(d.MessageId),
			"MALFORMED: " + decodeErr.Error() + "  body: " + truncate(bodyString(d.Body), 120)}, "  ")
	} else {
		body, err := env.MarshalJSON()
		if err != nil {
			return fmt.Errorf("cannot print event %s: %w", env.EventID, err)
		}
		line = strings.Join([]string{envelope.FormatTimestamp(env.Timestamp), d.RoutingKey, env.EventID.String(), string(body)}, "  ")
	}
	if _, err := fmt.Fprintln(a.stdout, line); err != nil {
		return fmt.Errorf("cannot write to stdout: %w", err)
	}
	return nil
}
