package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/bus/topic"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// defaultParkedLimit is limit when a list_parked call does not say.
const defaultParkedLimit = 50

const listParkedDescription = `List the messages a service parked in its poison queue ({exchange}.{service}.poison),
oldest first: event id, original routing key, kind of failure (malformed, invalid,
unknown_type, handler, panic), handler, attempts, times, reason and body. The queue is
left as it was. service defaults to the server's; the command processor's is
command_processor.`

const replayParkedDescription = `Send parked messages back to their service's queue, to the handler that failed,
with the same event id and body. Give event_ids, or all=true with optional filters; a
parked copy is removed once its replay is confirmed.`

// ParkedFilter selects parked messages.
type ParkedFilter struct {
	Service    string `json:"service,omitempty" jsonschema:"the service whose poison queue to use, e.g. command_processor"`
	RoutingKey string `json:"routing_key,omitempty" jsonschema:"only messages whose original routing key matches this AMQP pattern"`
	Kind       string `json:"kind,omitempty" jsonschema:"only this kind of failure: malformed, invalid, unknown_type, handler or panic"`
	Handler    string `json:"handler,omitempty" jsonschema:"only messages this handler failed on"`
	Limit      int    `json:"limit,omitempty" jsonschema:"at most this many messages; default 50"`
}

// ListParkedInput is the input of list_parked.
type ListParkedInput struct {
	ParkedFilter
}

// Parked is one parked message.
type Parked struct {
	EventID      string `json:"event_id"`
	RoutingKey   string `json:"routing_key"`
	Kind         string `json:"kind"`
	Handler      string `json:"handler,omitempty"`
	Attempts     int    `json:"attempts"`
	FirstFailure string `json:"first_failure,omitempty"`
	LastFailure  string `json:"last_failure,omitempty"`
	Reason       string `json:"reason"`
	Body         string `json:"body" jsonschema:"the body as it arrived, or a note of its size when it is not UTF-8"`
}

// ParkedOutput is the output of list_parked and replay_parked.
type ParkedOutput struct {
	Queue    string   `json:"queue" jsonschema:"the poison queue"`
	Messages []Parked `json:"messages" jsonschema:"the messages listed, or replayed"`
}

// ReplayParkedInput is the input of replay_parked.
type ReplayParkedInput struct {
	ParkedFilter
	EventIDs []string `json:"event_ids,omitempty" jsonschema:"the parked messages to replay"`
	All      bool     `json:"all,omitempty" jsonschema:"replay every message the filters select"`
}

func (s *Server) listParked(ctx context.Context, _ *mcp.CallToolRequest, in ListParkedInput) (*mcp.CallToolResult, ParkedOutput, error) {
	q, f, err := s.poison(in.ParkedFilter)
	if err != nil {
		return nil, ParkedOutput{}, err
	}
	if f.Limit == 0 {
		f.Limit = defaultParkedLimit
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	msgs, err := q.List(ctx, f)
	if err != nil {
		return nil, ParkedOutput{}, s.poisonError(q, err)
	}
	return nil, ParkedOutput{Queue: q.Name(), Messages: parkedOut(msgs)}, nil
}

func (s *Server) replayParked(ctx context.Context, _ *mcp.CallToolRequest, in ReplayParkedInput) (*mcp.CallToolResult, ParkedOutput, error) {
	if len(in.EventIDs) == 0 && !in.All {
		return nil, ParkedOutput{}, toolError("say what to replay: event_ids (from list_parked), or all=true with optional filters")
	}
	q, f, err := s.poison(in.ParkedFilter)
	if err != nil {
		return nil, ParkedOutput{}, err
	}
	f.EventIDs = in.EventIDs
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	msgs, err := q.Replay(ctx, f)
	if err != nil {
		return nil, ParkedOutput{}, s.poisonError(q, err)
	}
	return nil, ParkedOutput{Queue: q.Name(), Messages: parkedOut(msgs)}, nil
}

// poison checks the filter and returns the service's poison queue.
func (s *Server) poison(in ParkedFilter) (*reliability.PoisonQueue, reliability.PoisonFilter, error) {
	f := reliability.PoisonFilter{RoutingKey: in.RoutingKey, Kind: in.Kind, Handler: in.Handler, Limit: in.Limit}
	service := strings.TrimSpace(in.Service)
	if service == "" {
		service = s.cfg.ServiceName
	}
	if strings.ContainsAny(service, " #*") {
		return nil, f, toolError("service %q: want a service name such as command_processor", service)
	}
	if in.RoutingKey != "" {
		if _, err := topic.Compile(in.RoutingKey); err != nil {
			return nil, f, toolError("routing_key %q: %v (e.g. agent.thread.prompt or agent.#)", in.RoutingKey, err)
		}
	}
	if in.Limit < 0 {
		return nil, f, toolError("limit is %d: give 1 or more", in.Limit)
	}
	if err := f.Validate(); err != nil {
		return nil, f, toolError("%v", err)
	}
	return reliability.NewPoisonQueue(s.deps.Bus, service), f, nil
}

// poisonError says what to do about a failed poison-queue operation.
func (s *Server) poisonError(q *reliability.PoisonQueue, err error) error {
	switch {
	case errors.Is(err, reliability.ErrNoPoisonQueue):
		return toolError("%v: the queue %s does not exist; check service (the command processor's is command_processor)", err, q.Name())
	case errors.Is(err, reliability.ErrPoisonQueueEmbedded):
		return toolError("%v", err)
	case errors.Is(err, transport.ErrUnroutable):
		return toolError("%v: the service queue %s does not exist; start the service once, or check service", err, q.ServiceQueue())
	case errors.Is(err, context.DeadlineExceeded):
		return toolError("the broker did not answer within %s: %v; check that it is up, then call again", s.cfg.Timeout, err)
	}
	return toolError("%v", err)
}

func parkedOut(msgs []reliability.ParkedMessage) []Parked {
	out := make([]Parked, 0, len(msgs))
	for _, m := range msgs {
		body := string(m.Body)
		if !utf8.Valid(m.Body) {
			body = fmt.Sprintf("(%d bytes, not UTF-8)", len(m.Body))
		}
		out = append(out, Parked{EventID: m.EventID, RoutingKey: m.RoutingKey, Kind: m.Kind, Handler: m.Handler, Attempts: m.Attempts,
			FirstFailure: when(m.FirstFailure), LastFailure: when(m.LastFailure), Reason: m.Reason, Body: body})
	}
	return out
}

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
