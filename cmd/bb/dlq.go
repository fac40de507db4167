package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/topic"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// dlqKinds are the failure kinds a parked message can have, for --kind.
var dlqKinds = []string{envelope.KindMalformed, envelope.KindInvalid, envelope.KindUnknownType, envelope.KindHandler, middleware.KindPanic, envelope.KindRunaway}

// dlqReasonWidth is how much of a reason `bb dlq list` shows.
const dlqReasonWidth = 80

func (a *app) dlqCommand() *cobra.Command {
	var service string
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay and purge the messages a service parked in its poison queue",
		Long: `Inspect and re-drive a service's poison queue, {EXCHANGE_NAME}.{SERVICE}.poison,
where the service's reliability middleware parks what it cannot handle: a
body that is not an envelope (kind malformed), a payload that fails its schema
(invalid), an event type it rejects (unknown_type), a handler's permanent
error or retries given up (handler), a handler that panicked on every attempt
(panic). A parked message keeps the producer's body byte for byte; its
headers say why, by which handler, after how many attempts and when.

--service names the service (default SERVICE_NAME, "bloodbank" when unset;
the command processor's is command_processor). Filters narrow list, replay
and purge:
  --routing-key PATTERN   original routing key, AMQP topic syntax ('agent.#')
  --kind KIND             malformed, invalid, unknown_type, handler, panic or runaway
  --handler NAME          the handler that failed
  --since, --until WHEN   last failure at or after / before WHEN: an RFC 3339
                          time (2026-01-29T10:00:00Z) or a duration ago (90m, 1h, 7d)
  --limit N               at most N messages

Reading is non-destructive: list and show put every message back. Needs
RABBIT_URL (exit 2 without it); an unknown service, a missing event id or a
bad filter is exit 1.`,
		Example: `  bb dlq list --service command_processor
  bb dlq list --service command_processor --kind invalid --since 1h --json | jq .reason
  bb dlq show 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11 --service command_processor
  bb dlq replay --service command_processor --all --routing-key 'agent.#'
  bb dlq purge --service command_processor --until 7d --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return usageErrorf("missing subcommand: list, show, replay or purge")
		},
	}
	cmd.PersistentFlags().StringVar(&service, "service", "", "the service whose poison queue to use (default SERVICE_NAME)")
	cmd.AddCommand(a.dlqListCommand(&service), a.dlqShowCommand(&service), a.dlqReplayCommand(&service), a.dlqPurgeCommand(&service))
	return cmd
}

// dlqFilterFlags are the filter flags of list, replay and purge.
type dlqFilterFlags struct {
	routingKey, kind, handler, since, until string
	limit                                   int
}

func (f *dlqFilterFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.routingKey, "routing-key", "", "only messages whose original routing key matches `PATTERN` ('*' one word, '#' any)")
	fs.StringVar(&f.kind, "kind", "", "only messages parked for this `KIND` of failure: "+strings.Join(dlqKinds, ", "))
	fs.StringVar(&f.handler, "handler", "", "only messages the handler `NAME` failed on")
	fs.StringVar(&f.since, "since", "", "only messages whose last failure is at or after `WHEN` (RFC 3339, or a duration ago: 1h, 7d)")
	fs.StringVar(&f.until, "until", "", "only messages whose last failure is before `WHEN` (RFC 3339, or a duration ago: 1h, 7d)")
	fs.IntVar(&f.limit, "limit", 0, "at most `N` messages (0: all)")
}

// filter checks the flags and builds the filter they describe.
func (f dlqFilterFlags) filter(now time.Time) (reliability.PoisonFilter, error) {
	out := reliability.PoisonFilter{RoutingKey: f.routingKey, Kind: f.kind, Handler: f.handler, Limit: f.limit}
	if f.routingKey != "" {
		if _, err := topic.Compile(f.routingKey); err != nil {
			return out, usageErrorf("--routing-key %q: %v (e.g. 'agent.thread.prompt' or 'fireflies.#')", f.routingKey, err)
		}
	}
	if f.kind != "" && !slices.Contains(dlqKinds, f.kind) {
		return out, usageErrorf("--kind %q: want one of %s", f.kind, strings.Join(dlqKinds, ", "))
	}
	if f.limit < 0 {
		return out, usageErrorf("--limit must be 0 (no limit) or more, got %d", f.limit)
	}
	var err error
	if out.Since, err = parseWhen("--since", f.since, now); err != nil {
		return out, err
	}
	if out.Until, err = parseWhen("--until", f.until, now); err != nil {
		return out, err
	}
	if !out.Since.IsZero() && !out.Until.IsZero() && !out.Since.Before(out.Until) {
		return out, usageErrorf("--since %s is not before --until %s: no message can match", f.since, f.until)
	}
	return out, nil
}

// filtered gives cmd, a subcommand of dlq that takes the filter flags,
// those flags and its RunE: once the flags are checked, check (optional)
// checks the arguments and the other flags, and do runs on the poison
// queue with the filter the flags describe.
func (a *app) filtered(cmd *cobra.Command, service *string, check func(args []string) error,
	do func(ctx context.Context, q *reliability.PoisonQueue, args []string, filter reliability.PoisonFilter) error) {
	var f dlqFilterFlags
	f.register(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		filter, err := f.filter(time.Now())
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(args); err != nil {
				return err
			}
		}
		return a.onPoisonQueue(cmd.Context(), *service, func(ctx context.Context, q *reliability.PoisonQueue) error {
			return do(ctx, q, args, filter)
		})
	}
}

// parseWhen reads an RFC 3339 time, or a positive duration ago ("90m",
// "1h", "7d"); "" is no bound.
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return time.Time{}, usageErrorf("%s %q: want an RFC 3339 time (2026-01-29T10:00:00Z) or a positive duration ago (90m, 1h, 7d)", flag, s)
	}
	return now.Add(-d), nil
}

// onPoisonQueue connects to the broker, runs do on the poison queue of
// the service (SERVICE_NAME when service is ""), and closes the
// connection. do bounds its own calls with --timeout, since purge waits
// for a person between two of them.
func (a *app) onPoisonQueue(ctx context.Context, service string, do func(context.Context, *reliability.PoisonQueue) error) error {
	cfg, logger, err := a.setup()
	if err != nil {
		return err
	}
	if service != "" && strings.ContainsAny(service, " #*") {
		return usageErrorf("--service %q: want a service name such as command_processor", service)
	}
	b, err := a.openBus(ctx, cfg.Bus, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	q := reliability.NewPoisonQueue(b, service)
	logger.Debug("dlq: poison queue", slog.String("queue", q.Name()), slog.String("service_queue", q.ServiceQueue()))
	return do(ctx, q)
}

// dlqError says what to do about a failed poison-queue operation: a wrong
// service or event id is the user's to fix (exit 1), anything else is the
// broker's (exit 2).
func (a *app) dlqError(err error, q *reliability.PoisonQueue) error {
	switch {
	case errors.Is(err, reliability.ErrNoPoisonQueue):
		return usageErrorf("%v\nthe queue %s does not exist: check --service (or SERVICE_NAME; the command processor's is command_processor) and EXCHANGE_NAME; a service has a poison queue once it ran with the reliability middleware",
			err, q.Name())
	case errors.Is(err, reliability.ErrNotParked):
		return usageErrorf("%v\nlist what is parked with: bb dlq list --service %s", err, serviceOf(q))
	case errors.Is(err, transport.ErrUnroutable):
		return infraErrorf("%v\nthe service queue %s does not exist: start the service once (it declares its queue), or check --service", err, q.ServiceQueue())
	case errors.Is(err, context.DeadlineExceeded):
		return infraErrorf("%v\nthe broker did not answer within %s: check that it is up, or raise --timeout", err, a.timeout)
	}
	return infraErrorf("%v", err)
}

// serviceOf recovers the service name from its queue names.
func serviceOf(q *reliability.PoisonQueue) string {
	name := strings.TrimSuffix(q.Name(), ".poison")
	if i := strings.LastIndex(name, "."); i >= 0 && q.ServiceQueue() == name {
		return name[i+1:]
	}
	return name
}

func (a *app) dlqListCommand(service *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the parked messages, oldest first",
		Long: `List the messages parked in the service's poison queue, oldest first, one line
each: event id, original routing key, kind of failure, handler, attempts,
last failure (UTC) and the reason, shortened. The queue is left as it was.

--json prints one JSON object per line instead, with every header, the whole
reason, and the body ("body" as text, or "body_base64" when it is not UTF-8).`,
		Example: `  bb dlq list --service command_processor
  bb dlq list --service command_processor --routing-key 'agent.#' --kind invalid --since 24h
  bb dlq list --service command_processor --json | jq -r .event_id`,
		Args: cobra.NoArgs,
	}
	a.filtered(cmd, service, nil, func(ctx context.Context, q *reliability.PoisonQueue, _ []string, filter reliability.PoisonFilter) error {
		return a.dlqList(ctx, q, filter, asJSON)
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per parked message")
	return cmd
}

func (a *app) dlqList(ctx context.Context, q *reliability.PoisonQueue, filter reliability.PoisonFilter, asJSON bool) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	parked, err := q.List(ctx, filter)
	if err != nil {
		return a.dlqError(err, q)
	}
	if asJSON {
		for _, m := range parked {
			line, err := marshalLine(parkedJSON(m))
			if err != nil {
				return fmt.Errorf("cannot print %s: %w", m.EventID, err)
			}
			if _, err := fmt.Fprintf(a.stdout, "%s\n", line); err != nil {
				return err
			}
		}
	} else if len(parked) > 0 {
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT ID\tROUTING KEY\tKIND\tHANDLER\tATTEMPTS\tLAST FAILURE\tREASON")
		for _, m := range parked {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", orDash(m.EventID), orDash(m.RoutingKey), orDash(m.Kind),
				orDash(m.Handler), m.Attempts, formatWhen(m.LastFailure), orDash(truncate(m.Reason, dlqReasonWidth)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stderr, "bb: %d parked %s in %s%s\n", len(parked), plural(len(parked), "message", "messages"), q.Name(), filterNote(filter))
	return nil
}

func (a *app) dlqShowCommand(service *string) *cobra.Command {
	var asJSON, bodyOnly bool
	cmd := &cobra.Command{
		Use:   "show EVENT_ID",
		Short: "Print a parked message: its headers, then its body byte for byte",
		Long: `Print one parked message: its event id, every header (why it was parked, by
which handler, after how many attempts, when, and the producer's own headers),
then the body exactly as the producer sent it. The queue is left as it was.

--body prints the body alone, unchanged (no newline added), to save or
re-publish it; --json prints the message as one JSON object.`,
		Example: `  bb dlq show 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11 --service command_processor
  bb dlq show 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11 --service command_processor --body | jq .payload`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON && bodyOnly {
				return usageErrorf("--json and --body contradict each other: pick one")
			}
			if strings.TrimSpace(args[0]) == "" {
				return usageErrorf("EVENT_ID is empty: give the event id bb dlq list prints")
			}
			return a.onPoisonQueue(cmd.Context(), *service, func(ctx context.Context, q *reliability.PoisonQueue) error {
				return a.dlqShow(ctx, q, args[0], asJSON, bodyOnly)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the message as one JSON object")
	cmd.Flags().BoolVar(&bodyOnly, "body", false, "print only the body, byte for byte")
	return cmd
}

func (a *app) dlqShow(ctx context.Context, q *reliability.PoisonQueue, eventID string, asJSON, bodyOnly bool) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	m, err := q.Show(ctx, eventID)
	if err != nil {
		return a.dlqError(err, q)
	}
	switch {
	case bodyOnly:
		_, err = a.stdout.Write(m.Body)
		return err
	case asJSON:
		return writeIndentedJSON(a.stdout, parkedJSON(m))
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "event_id: %s\nqueue: %s\nheaders:\n", m.EventID, q.Name())
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		fmt.Fprintf(&sb, "  %s: %s\n", k, strings.ReplaceAll(m.Headers[k], "\n", "\n    "))
	}
	fmt.Fprintf(&sb, "body (%d bytes):\n", len(m.Body))
	out := append([]byte(sb.String()), m.Body...)
	if len(m.Body) == 0 || m.Body[len(m.Body)-1] != '\n' {
		out = append(out, '\n')
	}
	_, err = a.stdout.Write(out)
	return err
}

func (a *app) dlqReplayCommand(service *string) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "replay [EVENT_ID...] | --all",
		Short: "Send parked messages back to their service, to the handler that failed",
		Long: `Send parked messages back to the service queue, each under its original routing
key, to the handler that failed on it, with the same event id and body and
its attempt count reset. A message parked as runaway goes back with a fresh
budget: it starts a new chain (depth 0, its own root), and the output says
so. A message leaves the poison queue only once the
broker confirmed its replay. Prints one line per message replayed.

Name the messages by event id, or pass --all for every parked message;
filters narrow either. An event id that is not parked is exit 1, after the
others were replayed. Fix what made them fail first, or they come back.`,
		Example: `  bb dlq replay 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11 --service command_processor
  bb dlq replay --all --service command_processor --kind handler --since 1h`,
		// In PreRunE, so that ids given with --all (or neither) are reported
		// before a bad filter flag; blank ids are checked after it.
		PreRunE: func(_ *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usageErrorf("give event ids or --all, not both")
			case !all && len(args) == 0:
				return usageErrorf("nothing to replay: name the event ids (bb dlq list prints them) or pass --all")
			}
			return nil
		},
	}
	checkIDs := func(args []string) error {
		for _, id := range args {
			if strings.TrimSpace(id) == "" {
				return usageErrorf("an EVENT_ID is empty")
			}
		}
		return nil
	}
	a.filtered(cmd, service, checkIDs, func(ctx context.Context, q *reliability.PoisonQueue, args []string, filter reliability.PoisonFilter) error {
		filter.EventIDs = args
		return a.dlqReplay(ctx, q, filter)
	})
	cmd.Flags().BoolVar(&all, "all", false, "replay every parked message the filters select")
	return cmd
}

func (a *app) dlqReplay(ctx context.Context, q *reliability.PoisonQueue, filter reliability.PoisonFilter) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	done, err := replayOnce(ctx, q, filter)
	replayed := map[string]bool{}
	for _, m := range done {
		replayed[m.EventID] = true
		fmt.Fprintf(a.stdout, "replayed %s %s (%s, handler %s) to %s\n", orDash(m.EventID), orDash(m.RoutingKey), orDash(m.Kind), orDash(m.Handler), q.ServiceQueue())
		if m.Kind == envelope.KindRunaway {
			fmt.Fprintf(a.stdout, "  %s was parked by a runaway-chain guard: it goes back with a fresh budget (depth 0, a new root), on purpose\n", m.EventID)
		}
	}
	fmt.Fprintf(a.stderr, "bb: replayed %d %s from %s to %s\n", len(done), plural(len(done), "message", "messages"), q.Name(), q.ServiceQueue())
	if err != nil {
		return a.dlqError(err, q)
	}
	var missing []string
	for _, id := range filter.EventIDs {
		if !replayed[id] && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return usageErrorf("not parked in %s%s: %s\nlist what is parked with: bb dlq list --service %s",
			q.Name(), filterNote(reliability.PoisonFilter{RoutingKey: filter.RoutingKey, Kind: filter.Kind, Handler: filter.Handler, Since: filter.Since, Until: filter.Until}),
			strings.Join(missing, ", "), serviceOf(q))
	}
	return nil
}

// replayOnce replays the parked messages filter selects as they are now,
// each once. A message that fails again at once is parked again, at the
// tail of the poison queue, while PoisonQueue.Replay is still scanning it,
// with the same event id: Replay alone would pick it up and replay it
// again, over and over until its context ends. So the selection is read
// first, and Replay is bounded to its ids and its size; the scan goes in
// queue order and stops before the re-parked copies.
func replayOnce(ctx context.Context, q *reliability.PoisonQueue, filter reliability.PoisonFilter) ([]reliability.ParkedMessage, error) {
	selected, err := q.List(ctx, filter)
	if err != nil || len(selected) == 0 {
		return nil, err
	}
	bounded := filter
	bounded.EventIDs = nil
	for _, m := range selected {
		if !slices.Contains(bounded.EventIDs, m.EventID) {
			bounded.EventIDs = append(bounded.EventIDs, m.EventID)
		}
	}
	bounded.Limit = len(selected)
	return q.Replay(ctx, bounded)
}

func (a *app) dlqPurgeCommand(service *string) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "purge [--yes]",
		Short: "Delete parked messages for good, after a confirmation",
		Long: `Delete the parked messages the filters select (all of them without filters)
from the poison queue. They cannot be recovered.

On a terminal bb asks first, saying how many would go; type yes to confirm.
--yes skips the question; without a terminal (a script, a pipe) --yes is
required, and bb refuses (exit 1) without it.`,
		Example: `  bb dlq purge --service command_processor
  bb dlq purge --service command_processor --kind malformed --until 7d --yes`,
		Args: cobra.NoArgs,
	}
	confirmable := func([]string) error {
		if !yes && !isTerminal(a.stdin) {
			return usageErrorf("refusing to purge without confirmation: stdin is not a terminal, so bb cannot ask; pass --yes to purge from a script")
		}
		return nil
	}
	a.filtered(cmd, service, confirmable, func(ctx context.Context, q *reliability.PoisonQueue, _ []string, filter reliability.PoisonFilter) error {
		return a.dlqPurge(ctx, q, filter, yes)
	})
	cmd.Flags().BoolVar(&yes, "yes", false, "purge without asking for confirmation")
	return cmd
}

func (a *app) dlqPurge(ctx context.Context, q *reliability.PoisonQueue, filter reliability.PoisonFilter, yes bool) error {
	if !yes {
		n, err := a.countParked(ctx, q, filter)
		if err != nil {
			return a.dlqError(err, q)
		}
		if n == 0 {
			fmt.Fprintf(a.stderr, "bb: nothing to purge: no parked message in %s%s\n", q.Name(), filterNote(filter))
			return nil
		}
		fmt.Fprintf(a.stderr, "Purge %d parked %s from %s%s? They cannot be recovered. Type yes to confirm: ",
			n, plural(n, "message", "messages"), q.Name(), filterNote(filter))
		answer, _ := bufio.NewReader(a.stdin).ReadString('\n')
		if strings.TrimSpace(answer) != "yes" {
			return usageErrorf("purge cancelled: nothing was removed")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	n, err := q.Purge(ctx, filter)
	if err != nil {
		return a.dlqError(err, q)
	}
	fmt.Fprintf(a.stdout, "purged %d %s from %s\n", n, plural(n, "message", "messages"), q.Name())
	return nil
}

// countParked is how many parked messages the filter selects.
func (a *app) countParked(ctx context.Context, q *reliability.PoisonQueue, filter reliability.PoisonFilter) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if filter.IsZero() {
		return q.Count(ctx)
	}
	ms, err := q.List(ctx, filter)
	return len(ms), err
}

// isTerminal reports whether r is a terminal a person can answer on.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// parkedMessageJSON is a parked message as `bb dlq list --json` and
// `bb dlq show --json` print it.
type parkedMessageJSON struct {
	EventID      string            `json:"event_id"`
	RoutingKey   string            `json:"routing_key"`
	Kind         string            `json:"kind"`
	Handler      string            `json:"handler"`
	Service      string            `json:"service"`
	Attempts     int               `json:"attempts"`
	FirstFailure string            `json:"first_failure,omitempty"`
	LastFailure  string            `json:"last_failure,omitempty"`
	Reason       string            `json:"reason"`
	Headers      map[string]string `json:"headers"`
	Body         *string           `json:"body,omitempty"`
	BodyBase64   string            `json:"body_base64,omitempty"`
}

func parkedJSON(m reliability.ParkedMessage) parkedMessageJSON {
	out := parkedMessageJSON{EventID: m.EventID, RoutingKey: m.RoutingKey, Kind: m.Kind, Handler: m.Handler, Service: m.Service,
		Attempts: m.Attempts, Reason: m.Reason, Headers: m.Headers}
	if !m.FirstFailure.IsZero() {
		out.FirstFailure = envelope.FormatTimestamp(m.FirstFailure)
	}
	if !m.LastFailure.IsZero() {
		out.LastFailure = envelope.FormatTimestamp(m.LastFailure)
	}
	if utf8.Valid(m.Body) {
		body := string(m.Body)
		out.Body = &body
	} else {
		out.BodyBase64 = base64.StdEncoding.EncodeToString(m.Body)
	}
	return out
}

// formatWhen writes a failure time in UTC to the second, "-" when unknown.
func formatWhen(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// filterNote says which filters narrowed a result, for the summary line.
func filterNote(f reliability.PoisonFilter) string {
	var parts []string
	if f.RoutingKey != "" {
		parts = append(parts, "routing key "+f.RoutingKey)
	}
	if f.Kind != "" {
		parts = append(parts, "kind "+f.Kind)
	}
	if f.Handler != "" {
		parts = append(parts, "handler "+f.Handler)
	}
	if !f.Since.IsZero() {
		parts = append(parts, "since "+formatWhen(f.Since))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "until "+formatWhen(f.Until))
	}
	if f.Limit > 0 {
		parts = append(parts, "limit "+strconv.Itoa(f.Limit))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
