package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/bus/topic"
)

// defaultMaxEvents is max_events when a watch_events call does not say.
const defaultMaxEvents = 10

const watchDescription = `Wait for events on the bus and return them as v1 envelopes. patterns are AMQP
topic patterns ('*' one word, '#' any; default ["#"]). caused_by (an event id) keeps
only the events whose correlation_ids contain it: after publish_event, pass its
event_id to receive what it caused, even if that arrived before this call. Returns
once max_events events arrived (default 10) or wait_seconds passed (default and
limit in the input schema); timed_out says which. Other watches see only events that
arrive while they wait. Loop watch, react, watch to follow the bus.`

// WatchInput is the input of watch_events.
type WatchInput struct {
	Patterns    []string `json:"patterns,omitempty" jsonschema:"AMQP topic patterns the routing key must match, e.g. agent.thread.* or fireflies.#; default [\"#\"]"`
	CausedBy    string   `json:"caused_by,omitempty" jsonschema:"an event id: only events whose correlation_ids contain it"`
	WaitSeconds float64  `json:"wait_seconds,omitempty" jsonschema:"how long to wait at most, in seconds"`
	MaxEvents   int      `json:"max_events,omitempty" jsonschema:"return once this many events arrived; default 10"`
}

// WatchOutput is the output of watch_events.
type WatchOutput struct {
	Events   []json.RawMessage `json:"events" jsonschema:"the events, oldest first, each a whole v1 envelope"`
	TimedOut bool              `json:"timed_out" jsonschema:"true when the wait ended before max_events events arrived"`
	Waited   float64           `json:"waited_seconds" jsonschema:"how long the call waited"`
}

func (s *Server) watchEvents(ctx context.Context, req *mcp.CallToolRequest, in WatchInput) (*mcp.CallToolResult, WatchOutput, error) {
	patterns, err := watchPatterns(in.Patterns)
	if err != nil {
		return nil, WatchOutput{}, err
	}
	wait := s.cfg.DefaultWait
	switch {
	case in.WaitSeconds < 0:
		return nil, WatchOutput{}, toolError("wait_seconds is %g: give a positive number of seconds, at most %g", in.WaitSeconds, s.cfg.MaxWait.Seconds())
	case in.WaitSeconds > s.cfg.MaxWait.Seconds():
		return nil, WatchOutput{}, toolError("wait_seconds %g is above the limit of %g: ask for at most %g, and call watch_events again to wait longer",
			in.WaitSeconds, s.cfg.MaxWait.Seconds(), s.cfg.MaxWait.Seconds())
	case in.WaitSeconds > 0:
		wait = time.Duration(in.WaitSeconds * float64(time.Second))
	}
	n := in.MaxEvents
	switch {
	case n < 0 || n > s.cfg.MaxEvents:
		return nil, WatchOutput{}, toolError("max_events %d is out of range: give 1 to %d (or leave it out for %d)", n, s.cfg.MaxEvents, min(defaultMaxEvents, s.cfg.MaxEvents))
	case n == 0:
		n = min(defaultMaxEvents, s.cfg.MaxEvents)
	}
	var cause uuid.UUID
	if in.CausedBy != "" {
		if cause, err = parseID("caused_by", in.CausedBy); err != nil {
			return nil, WatchOutput{}, err
		}
	}
	match := func(it item) bool {
		return slices.ContainsFunc(patterns, func(p string) bool { return topic.Match(p, it.key) }) &&
			(cause == uuid.Nil || slices.Contains(it.env.CorrelationIDs, cause))
	}

	start := time.Now()
	var c *collector
	if cause != uuid.Nil {
		if st, err := s.session(req.Session); err == nil {
			c = st.inboxFor(cause)
		}
	}
	if c == nil {
		if c, err = s.openCollector(ctx, patterns, match); err != nil {
			return nil, WatchOutput{}, toolError("cannot watch the bus: %v; check that the broker is up, then call again", err)
		}
		defer c.close()
	}
	got, timedOut := c.wait(ctx, match, n, wait)
	out := WatchOutput{Events: make([]json.RawMessage, 0, len(got)), TimedOut: timedOut, Waited: time.Since(start).Round(time.Millisecond).Seconds()}
	for _, it := range got {
		body, err := it.env.MarshalJSON()
		if err != nil {
			return nil, WatchOutput{}, toolError("cannot encode event %s: %v", it.env.EventID, err)
		}
		out.Events = append(out.Events, body)
	}
	return nil, out, nil
}

// watchPatterns checks the binding patterns, dropping repeats; none is "#".
func watchPatterns(in []string) ([]string, error) {
	var out []string
	for _, p := range in {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, toolError("a pattern is empty: give words separated by dots, e.g. agent.thread.* or fireflies.#")
		}
		if _, err := topic.Compile(p); err != nil {
			return nil, toolError("pattern %q: %v (e.g. agent.thread.* or fireflies.#)", p, err)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		out = []string{"#"}
	}
	return out, nil
}

// watchLimits writes the configured limits into the input schema, where a
// client's model reads them before it calls. They are not schema bounds:
// the SDK would refuse a value past them with its own message, and the
// handler's says what to do instead.
func (s *Server) watchLimits(in *jsonschema.Schema) {
	if p := in.Properties["wait_seconds"]; p != nil {
		p.Description = fmt.Sprintf("how long to wait at most, in seconds; default %g, at most %g", s.cfg.DefaultWait.Seconds(), s.cfg.MaxWait.Seconds())
	}
	if p := in.Properties["max_events"]; p != nil {
		p.Description = fmt.Sprintf("return once this many events arrived; default %d, at most %d", min(defaultMaxEvents, s.cfg.MaxEvents), s.cfg.MaxEvents)
	}
}
