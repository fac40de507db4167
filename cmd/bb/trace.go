package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/middleware"
)

func (a *app) traceCommand() *cobra.Command {
	var depth int
	var asJSON bool
	var chain string
	var cost bool
	cmd := &cobra.Command{
		Use:   "trace EVENT_ID",
		Short: "Show what caused an event and what it caused, from the correlation store in Redis",
		Long: `Show an event's place in the correlation graph the services record in Redis
(REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD or REDIS_URL): its parents
(the events that caused it), its children, then all its ancestors and
descendants, nearest first, up to --depth links away, and the metadata
recorded with its link.

--json prints the debug dump the Python tracker's debug_dump returns:
{"event_id", "parents", "children", "ancestors", "descendants", "metadata"}.

--chain ancestors|descendants prints, one id a line (a JSON array with
--json), the chain the Python tracker's get_correlation_chain returns: walked
depth first, in post-order, the event itself last; for ancestors the root
causes come first.

--cost prints the cost rolled up on the root of the event's chain instead:
the tokens_used and duration_ms its agent.thread.response and llm.response
events reported, in total and per agent (source.app); --json prints them as
{"root", "tokens_used", "duration_ms", "events", "by_agent"}.

An event nobody recorded links for is not an error: its lists are empty.
Links expire after CORRELATION_TTL_DAYS (30 by default).`,
		Example: `  bb trace 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11
  bb trace 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11 --depth 3 --json | jq .descendants
  bb trace 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11 --chain ancestors
  bb trace 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11 --cost`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cost {
				if chain != "" {
					return usageErrorf("--cost and --chain print different things: give one")
				}
				return a.runTraceCost(cmd.Context(), args[0], asJSON)
			}
			return a.runTrace(cmd.Context(), args[0], depth, asJSON, chain)
		},
	}
	cmd.Flags().IntVar(&depth, "depth", correlation.DefaultMaxDepth, "follow ancestors and descendants at most `N` links away")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the debug dump as JSON")
	cmd.Flags().BoolVar(&cost, "cost", false, "print the tokens and time spent under the event's root, in total and per agent")
	cmd.Flags().StringVar(&chain, "chain", "", "print the Python tracker's correlation chain toward `ancestors or descendants` instead")
	return cmd
}

func (a *app) runTrace(ctx context.Context, arg string, depth int, asJSON bool, chain string) error {
	id, err := parseUUID("EVENT_ID", arg)
	if err != nil {
		return err
	}
	if depth < 1 {
		return usageErrorf("--depth must be 1 or more, got %d", depth)
	}
	var dir correlation.Direction
	if chain != "" {
		if dir, err = correlation.ParseDirection(chain); err != nil {
			return usageErrorf("--chain: %v", err)
		}
	}
	cfg, logger, err := a.setup()
	if err != nil {
		return err
	}
	client, store, err := openStore(cfg, logger, depth)
	if err != nil {
		return err
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if dir != "" {
		ids, err := correlation.CorrelationChain(ctx, store, id, dir, depth)
		if err != nil {
			return a.redisError(err, cfg)
		}
		if asJSON {
			return writeIndentedJSON(a.stdout, ids)
		}
		for _, id := range ids {
			fmt.Fprintln(a.stdout, id)
		}
		return nil
	}
	dump, err := store.Debug(ctx, id, depth)
	if err != nil {
		return a.redisError(err, cfg)
	}
	if asJSON {
		return writeIndentedJSON(a.stdout, dump)
	}
	var link *correlation.Link
	if l, err := store.Lookup(ctx, id); err == nil {
		link = &l
	} else if !errors.Is(err, correlation.ErrNotFound) {
		return a.redisError(err, cfg)
	}
	printTrace(a.stdout, dump, link, depth, nodeNotes(ctx, client, store, dump))
	return nil
}

// nodeNotes says, per event of the dump, its depth in its chain (as its
// link records it) and whether a runaway guard parked it. It is best
// effort: what cannot be read is left out.
func nodeNotes(ctx context.Context, client redis.UniversalClient, store *correlation.RedisStore, d correlation.Dump) map[uuid.UUID]string {
	ids := slices.Concat([]uuid.UUID{d.EventID}, d.Parents, d.Children, d.Ancestors, d.Descendants)
	links, _ := store.LookupMany(ctx, ids)
	parked, _ := middleware.ParkedNotes(ctx, client, ids)
	notes := map[uuid.UUID]string{}
	for _, id := range ids {
		var parts []string
		if l, ok := links[id]; ok {
			if dep, ok := l.Metadata[middleware.LinkMetaDepth]; ok {
				parts = append(parts, fmt.Sprintf("depth %v", dep))
			}
		} else {
			parts = append(parts, "depth 0")
		}
		if reason, ok := parked[id]; ok {
			parts = append(parts, "PARKED: "+reason)
		}
		if len(parts) > 0 {
			notes[id] = "  [" + strings.Join(parts, "; ") + "]"
		}
	}
	return notes
}

// runTraceCost prints the cost totals of the root of arg's chain.
func (a *app) runTraceCost(ctx context.Context, arg string, asJSON bool) error {
	id, err := parseUUID("EVENT_ID", arg)
	if err != nil {
		return err
	}
	cfg, logger, err := a.setup()
	if err != nil {
		return err
	}
	client, store, err := openStore(cfg, logger, correlation.DefaultMaxDepth)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	totals, err := store.EventCost(ctx, id)
	if err != nil {
		return a.redisError(err, cfg)
	}
	if asJSON {
		return writeIndentedJSON(a.stdout, totals)
	}
	printCost(a.stdout, id, totals)
	return nil
}

// printCost writes a root's totals, then one line per agent, the most
// tokens first.
func printCost(w io.Writer, id uuid.UUID, t correlation.CostTotals) {
	if t.Root == id {
		fmt.Fprintf(w, "root %s\n", t.Root)
	} else {
		fmt.Fprintf(w, "root %s (of event %s)\n", t.Root, id)
	}
	fmt.Fprintf(w, "total  tokens %d  duration %s  events %d\n", t.TokensUsed, time.Duration(t.DurationMS)*time.Millisecond, t.Events)
	if t.Events == 0 {
		fmt.Fprintln(w, "no cost reported under this root (agent.thread.response and llm.response report tokens_used and duration_ms)")
		return
	}
	agents := slices.Sorted(maps.Keys(t.ByAgent))
	slices.SortStableFunc(agents, func(a, b string) int { return cmp.Compare(t.ByAgent[b].TokensUsed, t.ByAgent[a].TokensUsed) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "agent (source.app)\ttokens\tduration\tevents")
	for _, name := range agents {
		c := t.ByAgent[name]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", cmp.Or(name, "(none)"), c.TokensUsed, time.Duration(c.DurationMS)*time.Millisecond, c.Events)
	}
	_ = tw.Flush()
}

// redisError explains a failed read: stored data in an unknown layout, or
// a Redis that could not be reached in time. Both are exit 2.
func (a *app) redisError(err error, cfg config) error {
	if me, ok := errors.AsType[*correlation.MalformedError](err); ok {
		return infraErrorf("the correlation store holds a value bb cannot read: %v\nkey %s was not written in the layout of the wire contract (section 4); inspect it with redis-cli", err, me.Key)
	}
	return infraErrorf("cannot read the correlation graph from Redis at %s within %s: %v\ncheck that Redis is running there and that REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD (or REDIS_URL) point at it, or raise --timeout",
		redisWhere(cfg), a.timeout, err)
}

// redisWhere says which Redis the settings name, without the password.
func redisWhere(cfg config) string {
	r := cfg.Redis
	if r.URL != "" {
		return amqp.RedactURL(r.URL)
	}
	return fmt.Sprintf("%s (database %d)", net.JoinHostPort(r.Host, strconv.Itoa(r.Port)), r.DB)
}

// writeIndentedJSON writes v as indented JSON without HTML escaping.
func writeIndentedJSON(w io.Writer, v any) error {
	compact, err := marshalLine(v)
	if err != nil {
		return fmt.Errorf("cannot encode JSON: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		return fmt.Errorf("cannot indent JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// printTrace writes the readable tree of one event's correlations.
// notes, keyed by event id, follow each id: its depth, and whether it
// was parked.
func printTrace(w io.Writer, d correlation.Dump, link *correlation.Link, depth int, notes map[uuid.UUID]string) {
	fmt.Fprintf(w, "event %s%s\n", d.EventID, notes[d.EventID])
	if link != nil {
		fmt.Fprintf(w, "│ recorded  %s\n", envelope.FormatTimestamp(link.CreatedAt))
	}
	if d.Metadata != nil {
		meta, err := marshalLine(d.Metadata)
		if err != nil {
			meta = []byte(fmt.Sprint(d.Metadata))
		}
		fmt.Fprintf(w, "│ metadata  %s\n", meta)
	}
	if len(d.Parents)+len(d.Children)+len(d.Ancestors)+len(d.Descendants) == 0 {
		fmt.Fprintf(w, "└─ no correlation recorded: nothing links this event to a parent or a child (links expire after CORRELATION_TTL_DAYS)\n")
		return
	}
	sections := []struct {
		title string
		ids   []uuid.UUID
	}{
		{"parents (caused it)", d.Parents},
		{"children (it caused)", d.Children},
		{fmt.Sprintf("ancestors, nearest first, up to %d links", depth), d.Ancestors},
		{fmt.Sprintf("descendants, nearest first, up to %d links", depth), d.Descendants},
	}
	for i, s := range sections {
		branch, indent := "├─", "│  "
		if i == len(sections)-1 {
			branch, indent = "└─", "   "
		}
		fmt.Fprintf(w, "%s %s: %d\n", branch, s.title, len(s.ids))
		for j, id := range s.ids {
			leaf := "├─"
			if j == len(s.ids)-1 {
				leaf = "└─"
			}
			fmt.Fprintf(w, "%s%s %s%s\n", indent, leaf, id, notes[id])
		}
	}
}
