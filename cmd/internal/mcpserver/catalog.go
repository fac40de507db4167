package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/domains"
)

// SchemaURIPrefix starts the URI of every schema resource.
const SchemaURIPrefix = "bloodbank://schemas/"

// SchemaURI is the resource URI of the JSON Schema of the event type with
// this routing key (or template): bloodbank://schemas/agent.thread.prompt.
// A template's braces are percent-encoded.
func SchemaURI(routingKey string) string { return SchemaURIPrefix + url.PathEscape(routingKey) }

const listDescription = `List the event types of the catalogue, sorted by routing key. Narrow with domain
("agent" includes "agent/thread"), kind ("command" or "fact") and query (words that must
all appear in the routing key, name or description, case-insensitive). Then call
describe_event_type for a type's JSON Schema and example.`

// ListInput is the input of list_event_types.
type ListInput struct {
	Domain string `json:"domain,omitempty" jsonschema:"only this domain and the domains nested in it, e.g. agent or fireflies"`
	Kind   string `json:"kind,omitempty" jsonschema:"only commands (command) or facts (fact or event)"`
	Query  string `json:"query,omitempty" jsonschema:"free text: every word must appear in the routing key, name or description"`
}

// EventTypeSummary is one line of the catalogue.
type EventTypeSummary struct {
	RoutingKey  string `json:"routing_key" jsonschema:"the routing key, or a template whose {fields} are filled from the payload"`
	Name        string `json:"name" jsonschema:"the Go type name"`
	Domain      string `json:"domain"`
	Kind        string `json:"kind" jsonschema:"command (executed by a command processor) or fact (reports something that happened)"`
	Result      string `json:"result,omitempty" jsonschema:"for a command: the routing key of the event its execution publishes"`
	Description string `json:"description,omitempty"`
	SchemaURI   string `json:"schema_uri" jsonschema:"the resource holding its JSON Schema"`
}

// ListOutput is the output of list_event_types.
type ListOutput struct {
	EventTypes []EventTypeSummary `json:"event_types"`
	Domains    []string           `json:"domains" jsonschema:"every domain of the catalogue"`
}

func summary(et *domains.EventType) EventTypeSummary {
	return EventTypeSummary{RoutingKey: et.RoutingKey(), Name: et.Name(), Domain: et.Domain(), Kind: string(et.Kind()),
		Result: et.Result(), Description: et.Description(), SchemaURI: SchemaURI(et.RoutingKey())}
}

func (s *Server) listEventTypes(_ context.Context, _ *mcp.CallToolRequest, in ListInput) (*mcp.CallToolResult, ListOutput, error) {
	f := domains.Filter{Domain: strings.TrimSpace(in.Domain)}
	if in.Kind != "" {
		k, err := domains.ParseKind(in.Kind)
		if err != nil {
			return nil, ListOutput{}, toolError("kind %q: want command, fact or event, or leave it out", in.Kind)
		}
		f.Kind = k
	}
	words := strings.Fields(strings.ToLower(in.Query))
	out := ListOutput{EventTypes: []EventTypeSummary{}, Domains: s.deps.Events.Domains()}
	for _, et := range s.deps.Events.Events(f) {
		text := strings.ToLower(et.RoutingKey() + " " + et.Name() + " " + strings.Join(et.Aliases(), " ") + " " + et.Description())
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(text, w) }) {
			out.EventTypes = append(out.EventTypes, summary(et))
		}
	}
	if len(out.EventTypes) == 0 && f.Domain != "" && !slices.ContainsFunc(out.Domains, func(d string) bool {
		d2 := strings.ReplaceAll(f.Domain, ".", "/")
		return d == d2 || strings.HasPrefix(d, d2+"/")
	}) {
		return nil, ListOutput{}, toolError("no domain %q: pick one of %s", f.Domain, strings.Join(out.Domains, ", "))
	}
	return nil, out, nil
}

const describeDescription = `Describe one event type: routing key, kind, the command's result event, its
JSON Schema and a valid example payload. name is a routing key (agent.thread.prompt),
a template (artifact.{action}), a Go type name (thread.Prompt) or a Python class name.`

// DescribeInput is the input of describe_event_type.
type DescribeInput struct {
	Name string `json:"name" jsonschema:"routing key, template, Go type name or Python class name"`
}

// DescribeOutput is the output of describe_event_type.
type DescribeOutput struct {
	EventTypeSummary
	Aliases     []string        `json:"aliases,omitempty" jsonschema:"other names it is found under"`
	RoutingKeys []string        `json:"routing_keys" jsonschema:"the concrete routing keys it travels under (several for a template)"`
	Schema      json.RawMessage `json:"schema" jsonschema:"the payload's JSON Schema"`
	Example     json.RawMessage `json:"example" jsonschema:"a payload that validates"`
}

func (s *Server) describeEventType(_ context.Context, _ *mcp.CallToolRequest, in DescribeInput) (*mcp.CallToolResult, DescribeOutput, error) {
	et, err := s.lookup(in.Name)
	if err != nil {
		return nil, DescribeOutput{}, err
	}
	return nil, DescribeOutput{EventTypeSummary: summary(et), Aliases: et.Aliases(), RoutingKeys: et.RoutingKeys(),
		Schema: et.Schema(), Example: et.Example()}, nil
}

// lookup finds an event type by any of its names, or says how to find one.
func (s *Server) lookup(name string) (*domains.EventType, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, toolError("name is empty: give a routing key such as agent.thread.prompt (list_event_types lists them)")
	}
	et, err := s.deps.Events.Lookup(name)
	if errors.Is(err, domains.ErrUnknownEventType) {
		return nil, toolError("%s", s.unknownType(name))
	}
	if err != nil {
		return nil, toolError("cannot look up %q: %v", name, err)
	}
	return et, nil
}

// unknownType says that name is not in the catalogue and names the types
// of the same first word, which is usually the domain.
func (s *Server) unknownType(name string) string {
	msg := "unknown event type " + quote(name) + ": it is not in the catalogue"
	first, _, _ := strings.Cut(name, ".")
	var near []string
	for _, et := range s.deps.Events.Events(domains.Filter{}) {
		if k, _, _ := strings.Cut(et.RoutingKey(), "."); strings.EqualFold(k, first) {
			near = append(near, et.RoutingKey())
		}
	}
	if len(near) > 0 {
		return msg + "; did you mean one of " + strings.Join(near, ", ") + "?"
	}
	return msg + "; call list_event_types to see the registered types"
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// addResources exposes each event type's JSON Schema at SchemaURI.
func (s *Server) addResources() {
	for _, et := range s.deps.Events.Events(domains.Filter{}) {
		uri := SchemaURI(et.RoutingKey())
		schema := et.Schema()
		s.mcp.AddResource(&mcp.Resource{
			URI:         uri,
			Name:        et.RoutingKey(),
			Title:       et.Name(),
			Description: strings.TrimSpace(string(et.Kind()) + ": " + et.Description()),
			MIMEType:    "application/schema+json",
		}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/schema+json", Text: string(schema)}}}, nil
		})
	}
}
