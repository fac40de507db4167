package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
)

// replayAskAbove is the number of events above which a replay asks first.
const replayAskAbove = 100

func (a *app) replayCommand() *cobra.Command {
	var id, subtree, since, until, pattern, service string
	var dryRun, yes bool
	cmd := &cobra.Command{
		Use:   "replay (--id ID | --subtree ID | --since T [--until T] [--pattern P]) --to-service S",
		Short: "Deliver events from the event log again, into one service's queue only",
		Long: `Find events in the event log (see bb log) and deliver them again, body and
properties unchanged, into the queue of one service, "{EXCHANGE_NAME}.{S}",
through the default exchange: no other queue on the bus sees them. Each
delivery carries the header x-bb-replay with this replay's id, which is
printed on stdout.

--id takes one event by its id; --subtree takes an event and everything it
caused, as the correlation graph in Redis records it, and delivers them in
causal order, each cause before its effects; --since, --until and
--pattern select as bb log does. --dry-run lists what would be sent. A replay of more than 100
events asks first unless --yes; without a terminal it is refused (exit 1).
Exit 1 for bad arguments or a service with no queue, 2 for the broker or
Redis.

The service deduplicates a replayed event apart from its first run, once
per replay id, and a command run again under a replay gives its events new
ids, derived from the replay id, whose correlation links record replay_of.`,
		Example: `  bb replay --id 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11 --to-service command_processor
  bb replay --subtree 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11 --to-service command_processor --yes
  bb replay --since 2h --pattern 'agent.thread.prompt' --to-service command_processor --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runReplay(cmd.Context(), id, subtree, since, until, pattern, service, dryRun, yes)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "replay the one event with this `ID`")
	cmd.Flags().StringVar(&subtree, "subtree", "", "replay the event with this `ID` and all it caused, causes first")
	cmd.Flags().StringVar(&since, "since", "", "replay events from `T` on: an RFC 3339 time or a duration ago (1h)")
	cmd.Flags().StringVar(&until, "until", "", "replay events up to `T`")
	cmd.Flags().StringVar(&pattern, "pattern", "", "replay only events whose routing key matches `PATTERN`")
	cmd.Flags().StringVar(&service, "to-service", "", "deliver into the queue of service `S` (required)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list the events instead of sending them")
	cmd.Flags().BoolVar(&yes, "yes", false, "replay more than 100 events without asking")
	return cmd
}

func (a *app) runReplay(ctx context.Context, id, subtree, since, until, pattern, service string, dryRun, yes bool) error {
	if service == "" {
		return usageErrorf("--to-service is required: name the service whose queue receives the events")
	}
	// order[id] is the event's place in the replay; nil selects by range.
	var order map[uuid.UUID]int
	var r logRange
	switch {
	case id != "" && subtree != "":
		return usageErrorf("give either --id or --subtree, not both")
	case (id != "" || subtree != "") && (since != "" || until != "" || pattern != ""):
		return usageErrorf("give either --id/--subtree or --since/--until/--pattern, not both")
	case id != "":
		want, err := uuid.Parse(id)
		if err != nil {
			return usageErrorf("--id %q is not a UUID (e.g. 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11)", id)
		}
		order = map[uuid.UUID]int{want: 0}
	case subtree != "":
		root, err := uuid.Parse(subtree)
		if err != nil {
			return usageErrorf("--subtree %q is not a UUID (e.g. 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11)", subtree)
		}
		if order, err = a.subtreeOrder(ctx, root); err != nil {
			return err
		}
	case since == "":
		return usageErrorf("give --id ID, --subtree ID or --since T: replaying the whole log is never what is meant")
	default:
		var err error
		if r, err = parseLogRange(since, until, pattern, 0, time.Now()); err != nil {
			return err
		}
	}

	var found []amqp091.Delivery
	var places []int // places[i] is found[i]'s place in order
	err := a.readLog(ctx, r, func(d amqp091.Delivery, env envelope.Envelope, decodeErr error) error {
		if order != nil {
			place, ok := order[env.EventID]
			if decodeErr != nil || !ok {
				return nil
			}
			// An event the log keeps twice (published again) is replayed once.
			delete(order, env.EventID)
			places = append(places, place)
		}
		found = append(found, d)
		return nil
	})
	if err != nil {
		return err
	}
	if order != nil {
		found = inOrder(found, places)
		if len(order) > 0 && len(found) > 0 {
			fmt.Fprintf(a.stderr, "bb: %d %s of the selection not in the event log (expired, or never published on this exchange)\n",
				len(order), plural(len(order), "event", "events"))
		}
	}
	if len(found) == 0 {
		fmt.Fprintln(a.stderr, "bb: nothing to replay: no event in the log matches")
		return nil
	}
	if dryRun {
		for _, d := range found {
			env, decodeErr := envelope.Decode(d.Body)
			if err := a.printLogLine(d, env, decodeErr); err != nil {
				return err
			}
		}
		fmt.Fprintf(a.stderr, "bb: dry run: %d %s would be replayed to %s\n", len(found), plural(len(found), "event", "events"), service)
		return nil
	}
	if len(found) > replayAskAbove && !yes {
		if !isTerminal(a.stdin) {
			return usageErrorf("refusing to replay %d events without confirmation: stdin is not a terminal; pass --yes", len(found))
		}
		fmt.Fprintf(a.stderr, "Replay %d events into service %s? Type yes to confirm: ", len(found), service)
		answer, _ := bufio.NewReader(a.stdin).ReadString('\n')
		if strings.TrimSpace(answer) != "yes" {
			return usageErrorf("replay cancelled: nothing was sent")
		}
	}
	return a.deliverReplay(ctx, found, service)
}

// subtreeOrder is the place of root and of each of its descendants in
// causal order: the reverse of the descendants' depth-first post-order,
// which puts every event after all that caused it within the subtree.
func (a *app) subtreeOrder(ctx context.Context, root uuid.UUID) (map[uuid.UUID]int, error) {
	cfg, logger, err := a.setup()
	if err != nil {
		return nil, err
	}
	client, store, err := openStore(cfg, logger, correlation.DefaultMaxDepth)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	rctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	chain, err := correlation.CorrelationChain(rctx, store, root, correlation.TowardDescendants, 0)
	if err != nil {
		return nil, a.redisError(err, cfg)
	}
	slices.Reverse(chain)
	order := make(map[uuid.UUID]int, len(chain))
	for i, id := range chain {
		order[id] = i
	}
	return order, nil
}

// inOrder sorts found by places, found[i] going to place places[i]. The
// log's order is the order of publishing, which a replay must not trust
// to be causal: effects from two services may be published out of order.
func inOrder(found []amqp091.Delivery, places []int) []amqp091.Delivery {
	idx := make([]int, len(found))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(places[a], places[b]) })
	sorted := make([]amqp091.Delivery, len(found))
	for i, j := range idx {
		sorted[i] = found[j]
	}
	return sorted
}

// deliverReplay sends the deliveries into the service's queue, through
// the default exchange, and waits for the broker's confirms.
func (a *app) deliverReplay(ctx context.Context, found []amqp091.Delivery, service string) error {
	cfg, _, b, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	queue := cfg.Bus.ExchangeName + "." + service
	replayID := uuid.NewString()
	err = b.WithChannel(ctx, func(ch *amqp091.Channel) error {
		if _, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil {
			if amqpErr, ok := errors.AsType[*amqp091.Error](err); ok && amqpErr.Code == amqp091.NotFound {
				return usageErrorf("service %q has no queue %q: check --to-service and EXCHANGE_NAME", service, queue)
			}
			return err
		}
		if err := ch.Confirm(false); err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		confs := make([]*amqp091.DeferredConfirmation, len(found))
		for i, d := range found {
			confs[i], err = ch.PublishWithDeferredConfirmWithContext(pctx, "", queue, false, false, replayPublishing(d, replayID))
			if err != nil {
				return err
			}
		}
		for _, c := range confs {
			if ok, err := c.WaitContext(pctx); !ok || err != nil {
				return fmt.Errorf("the broker did not confirm a replayed event: %v", err)
			}
		}
		return nil
	})
	if err != nil {
		if _, classified := errors.AsType[*exitError](err); classified {
			return err
		}
		return infraErrorf("cannot replay into %q: %v", queue, err)
	}
	fmt.Fprintf(a.stderr, "bb: replayed %d %s into %s\n", len(found), plural(len(found), "event", "events"), queue)
	fmt.Fprintln(a.stdout, replayID)
	return nil
}

// replayPublishing is the delivery's publishing as it was, with the
// replay header and the original routing key added and the stream's own offset header left out. The
// user id is dropped too: RabbitMQ refuses a user id other than the
// publisher's own.
func replayPublishing(d amqp091.Delivery, replayID string) amqp091.Publishing {
	headers := amqp091.Table{}
	maps.Copy(headers, d.Headers)
	delete(headers, "x-stream-offset")
	headers[envelope.MetaReplay] = replayID
	// Sent through the default exchange, the delivery's routing key is the
	// queue's name: the service dispatches by this header instead, as it
	// does for what comes back from a delay queue.
	if _, ok := headers[envelope.MetaOriginalRoutingKey]; !ok {
		headers[envelope.MetaOriginalRoutingKey] = d.RoutingKey
	}
	return amqp091.Publishing{
		Headers: headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, Expiration: d.Expiration, MessageId: d.MessageId, Timestamp: d.Timestamp,
		Type: d.Type, AppId: d.AppId, Body: d.Body,
	}
}
