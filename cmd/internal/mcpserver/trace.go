package mcpserver

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/correlation"
)

// maxTraceDepth bounds the depth a trace_event call may ask for: the
// store's own default bound.
const maxTraceDepth = correlation.DefaultMaxDepth

const traceDescription = `Show an event's place in the correlation graph: its parents (the events that
caused it), its children (the events it caused), then its ancestors and descendants,
nearest first, up to depth links away (default 10). An event nobody linked has empty
lists, which is not an error; links expire after CORRELATION_TTL_DAYS.`

// TraceInput is the input of trace_event.
type TraceInput struct {
	EventID string `json:"event_id" jsonschema:"the event's id (a UUID)"`
	Depth   int    `json:"depth,omitempty" jsonschema:"follow ancestors and descendants at most this many links away; default 10"`
}

// TraceOutput is the output of trace_event: correlation.Dump as JSON.
type TraceOutput struct {
	EventID     string         `json:"event_id"`
	Parents     []string       `json:"parents" jsonschema:"the events that caused it"`
	Children    []string       `json:"children" jsonschema:"the events it caused"`
	Ancestors   []string       `json:"ancestors" jsonschema:"its causes, nearest first"`
	Descendants []string       `json:"descendants" jsonschema:"its effects, nearest first"`
	Metadata    map[string]any `json:"metadata,omitempty" jsonschema:"what was recorded with its link"`
}

func (s *Server) traceEvent(ctx context.Context, _ *mcp.CallToolRequest, in TraceInput) (*mcp.CallToolResult, TraceOutput, error) {
	id, err := parseID("event_id", in.EventID)
	if err != nil {
		return nil, TraceOutput{}, err
	}
	depth := in.Depth
	switch {
	case depth == 0:
		depth = 10
	case depth < 0 || depth > maxTraceDepth:
		return nil, TraceOutput{}, toolError("depth %d is out of range: give 1 to %d", depth, maxTraceDepth)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	d, err := s.deps.Correlation.Debug(ctx, id, depth)
	if err != nil {
		if me, ok := errors.AsType[*correlation.MalformedError](err); ok {
			return nil, TraceOutput{}, toolError("the correlation store holds a value that cannot be read (key %s): %v; an operator must inspect it", me.Key, err)
		}
		return nil, TraceOutput{}, toolError("cannot read the correlation graph within %s: %v; check that Redis is up, then call again", s.cfg.Timeout, err)
	}
	return nil, TraceOutput{EventID: d.EventID.String(), Parents: strs(d.Parents), Children: strs(d.Children),
		Ancestors: strs(d.Ancestors), Descendants: strs(d.Descendants), Metadata: d.Metadata}, nil
}

func strs(ids []uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}
