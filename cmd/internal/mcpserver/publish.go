package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

const publishDescription = `Publish one event. event_type is a routing key, template or type name from
list_event_types; payload is a JSON object that must match the type's JSON Schema
(describe_event_type shows it and an example). correlation_ids are the ids of the
events that caused this one. The result is the event_id, or, with isError set, each
validation problem with its JSON path (payload.field: message): fix them and call
again. To receive what the event causes (a command's answer), call watch_events
with caused_by set to the event_id.`

// PublishInput is the input of publish_event.
type PublishInput struct {
	EventType      string          `json:"event_type" jsonschema:"routing key, template or type name, e.g. agent.thread.prompt"`
	Payload        json.RawMessage `json:"payload" jsonschema:"the payload, a JSON object matching the type's schema"`
	CorrelationIDs []string        `json:"correlation_ids,omitempty" jsonschema:"ids (UUIDs) of the events that caused this one"`
}

// Problem is one reason a payload is invalid.
type Problem struct {
	Path    string `json:"path" jsonschema:"where, e.g. payload.prompt or payload.tags[2]"`
	Message string `json:"message" jsonschema:"what is wrong, e.g. required"`
}

// PublishOutput is the output of publish_event.
type PublishOutput struct {
	EventID    string    `json:"event_id,omitempty" jsonschema:"the published event's id; pass it as caused_by to watch_events"`
	RoutingKey string    `json:"routing_key,omitempty" jsonschema:"the routing key it was published under"`
	Problems   []Problem `json:"problems,omitempty" jsonschema:"why the payload was refused; nothing was published"`
}

func (s *Server) publishEvent(ctx context.Context, req *mcp.CallToolRequest, in PublishInput) (*mcp.CallToolResult, PublishOutput, error) {
	et, err := s.lookup(in.EventType)
	if err != nil {
		return nil, PublishOutput{}, err
	}
	payload := []byte(in.Payload)
	if len(payload) == 0 || strings.TrimSpace(string(payload)) == "null" {
		return nil, PublishOutput{}, toolError("payload is missing: give a JSON object matching the schema of %s (describe_event_type shows it and an example)", et.RoutingKey())
	}
	ids, err := parseIDs("correlation_ids", in.CorrelationIDs)
	if err != nil {
		return nil, PublishOutput{}, err
	}
	key := in.EventType
	if strings.ContainsAny(key, "{}") || !s.isKeyOf(key, et) {
		if key, err = et.ResolveRoutingKey(payload); err != nil {
			return s.invalid(et.RoutingKey(), fmt.Sprintf("cannot fill the routing key %s from the payload", et.RoutingKey()), err)
		}
	}
	if s.cfg.StrictTypes {
		err = s.deps.Events.Validate(key, payload)
	} else {
		payload, err = s.deps.Events.Normalize(key, payload)
	}
	if err != nil {
		return s.invalid(key, fmt.Sprintf("the payload of %s fails validation; nothing was published", key), err)
	}

	ss, err := s.session(req.Session)
	if err != nil {
		return nil, PublishOutput{}, err
	}
	id := uuid.New()
	env, err := envelope.New(key, json.RawMessage(payload),
		envelope.WithEventID(id),
		envelope.WithCorrelationIDs(ids...),
		envelope.WithSource(envelope.Source{Host: envelope.Hostname(), Type: envelope.TriggerAgent, App: ss.client}),
		envelope.WithAgentContext(&envelope.AgentContext{Type: ss.agentType, Name: ss.client, InstanceID: ss.id}))
	if err != nil {
		return nil, PublishOutput{}, toolError("cannot build the envelope: %v", err)
	}
	// The inbox is bound before the event leaves, so that nothing it causes
	// can arrive unseen.
	if err := ss.expect(ctx, id); err != nil {
		return nil, PublishOutput{}, toolError("cannot open this session's inbox on the broker, so nothing was published: %v; check that the broker is up, then call again", err)
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.deps.Bus.Publish(pctx, env); err != nil {
		s.log.Warn("mcp: publish failed", slog.String("event_id", id.String()), slog.String("event_type", key), slog.String("error", err.Error()))
		return nil, PublishOutput{}, toolError("the broker did not confirm event %s within %s: %v; it may not have been stored: check the broker, then publish again", id, s.cfg.Timeout, err)
	}
	s.log.Info("mcp: published", slog.String("event_id", id.String()), slog.String("event_type", key),
		slog.String("client", ss.client), slog.String("session", ss.id))
	return nil, PublishOutput{EventID: id.String(), RoutingKey: key}, nil
}

// isKeyOf reports whether key is itself a routing key et travels under,
// rather than one of its names.
func (s *Server) isKeyOf(key string, et *domains.EventType) bool {
	k, err := s.deps.Events.LookupKey(key)
	return err == nil && k == et
}

// invalid is the tool error of a refused payload: the problems, as text for
// the model and as structured content for programs.
func (s *Server) invalid(key, context string, err error) (*mcp.CallToolResult, PublishOutput, error) {
	var out PublishOutput
	lines := []string{context + ":"}
	if ve, ok := errors.AsType[*domains.ValidationError](err); ok && len(ve.Problems) > 0 {
		for _, p := range ve.Problems {
			out.Problems = append(out.Problems, Problem{Path: p.Path, Message: p.Message})
			lines = append(lines, "  "+p.String())
		}
	} else {
		out.Problems = []Problem{{Path: "payload", Message: err.Error()}}
		lines = append(lines, "  payload: "+err.Error())
	}
	lines = append(lines, "fix these and call publish_event again; describe_event_type "+key+" shows the schema and an example")
	res := &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: strings.Join(lines, "\n")}}}
	return res, out, nil
}

// parseIDs reads event ids, refusing the nil UUID.
func parseIDs(field string, in []string) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, 0, len(in))
	for i, s := range in {
		id, err := parseID(fmt.Sprintf("%s[%d]", field, i), s)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func parseID(field, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(strings.TrimSpace(s))
	if err != nil {
		return uuid.Nil, toolError("%s %q is not a UUID: give an event id such as 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11", field, s)
	}
	if id == uuid.Nil {
		return uuid.Nil, toolError("%s is the nil UUID, which no event has: give a real event id", field)
	}
	return id, nil
}
