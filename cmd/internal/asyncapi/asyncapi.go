package asyncapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

// Defaults of Options.
const (
	DefaultTitle   = "Bloodbank"
	DefaultVersion = envelope.Version
	// DefaultHost is the server named when Options.BrokerURL is empty.
	DefaultHost = "localhost:5672"
)

// Specification version and binding version this package writes.
const (
	Version            = "3.0.0"
	amqpBindingVersion = "0.3.0"
	protocolVersion    = "0-9-1"
)

// Extension keys the document carries beside the standard fields.
const (
	// KindExtension is "command" or "fact" on every message and operation.
	KindExtension = "x-bloodbank-kind"
	// ResultExtension is, on a command, the routing key of the event its
	// execution publishes.
	ResultExtension = "x-bloodbank-result"
	// DomainExtension is the domain as Python lists it ("agent/thread").
	DomainExtension = "x-bloodbank-domain"
)

// Options names what the registry does not know: where the bus is.
type Options struct {
	// Title is info.title. Optional; default "Bloodbank".
	Title string
	// Version is info.version. Optional; default the envelope version, "1.0.0".
	Version string
	// Description is info.description. Optional; default a paragraph on the
	// exchange and the envelope.
	Description string
	// ExchangeName is the topic exchange (EXCHANGE_NAME). Optional; default
	// "bloodbank.events.v1".
	ExchangeName string
	// BrokerURL is RABBIT_URL. Only its scheme, host, port and vhost reach
	// the document; user and password never do. Optional; default a broker
	// on localhost:5672, vhost "/".
	BrokerURL string
}

func (o *Options) setDefaults() {
	if o.Title == "" {
		o.Title = DefaultTitle
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.ExchangeName == "" {
		o.ExchangeName = envelope.DefaultExchange
	}
	if o.Description == "" {
		o.Description = "Every event travels on the durable topic exchange `" + o.ExchangeName +
			"` under a routing key equal to its `event_type`, as one JSON object: the v1 envelope " +
			"(components.schemas.Envelope) whose `payload` is the event type's schema. " +
			"Commands (x-bloodbank-kind: command) are executed by a command processor, which answers " +
			"with its result event; facts (x-bloodbank-kind: fact) report what happened."
	}
}

//go:embed envelope.json
var envelopeSchemas []byte

// exampleTime is the timestamp of every example envelope, fixed so that the
// document is the same on every run.
var exampleTime = time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC)

// Generate describes the event types of reg as an AsyncAPI 3.0.0 document,
// indented JSON. It fails only when a registered schema or example is not
// JSON, which the registry prevents, or when the broker URL cannot be parsed.
func Generate(reg *domains.Registry, opts Options) ([]byte, error) {
	opts.setDefaults()
	srvName, srv, vhost, err := brokerServer(opts.BrokerURL)
	if err != nil {
		return nil, err
	}
	doc := document{
		AsyncAPI:           Version,
		Info:               info{Title: opts.Title, Version: opts.Version, Description: opts.Description},
		DefaultContentType: "application/json",
		Servers:            map[string]server{srvName: srv},
		Channels:           map[string]channel{},
		Operations:         map[string]operation{},
		Components: components{
			Schemas:  map[string]json.RawMessage{},
			Messages: map[string]message{},
		},
	}
	var base map[string]json.RawMessage
	if err := json.Unmarshal(envelopeSchemas, &base); err != nil {
		return nil, fmt.Errorf("cannot read the envelope schema: %w", err)
	}
	for name, s := range base {
		doc.Components.Schemas[name] = s
	}
	exchange := channelBindings{AMQP: amqpChannel{
		Is: "routingKey",
		Exchange: amqpExchange{
			Name: opts.ExchangeName, Type: "topic", Durable: true, AutoDelete: false, VHost: vhost,
		},
		BindingVersion: amqpBindingVersion,
	}}

	events := reg.Events(domains.Filter{})
	ids := newIDs()
	channelOf := make(map[*domains.EventType]string, len(events))
	for _, e := range events {
		channelOf[e] = ids.channel(e.RoutingKey())
	}
	schemaIDs := newIDs()
	for _, e := range events {
		ch := channelOf[e]
		schemaName := schemaIDs.schema(e.Name())
		defs, err := payloadSchemas(schemaName, e.Schema())
		if err != nil {
			return nil, fmt.Errorf("cannot describe %s: %w", e.RoutingKey(), err)
		}
		for name, s := range defs {
			doc.Components.Schemas[name] = s
		}
		msg, err := newMessage(e, schemaName)
		if err != nil {
			return nil, fmt.Errorf("cannot describe %s: %w", e.RoutingKey(), err)
		}
		doc.Components.Messages[ch] = msg
		doc.Channels[ch] = channel{
			Address:     e.RoutingKey(),
			Title:       e.RoutingKey(),
			Description: e.Description(),
			Messages:    map[string]reference{ch: {Ref: "#/components/messages/" + ch}},
			Parameters:  parameters(e),
			Tags:        []tag{{Name: e.Domain()}},
			Bindings:    exchange,
		}
		doc.Operations[ch] = newOperation(e, ch, reg, channelOf)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("cannot encode the AsyncAPI document: %w", err)
	}
	return append(out, '\n'), nil
}

// brokerServer names the AMQP server of rawURL without its credentials, and
// the vhost the exchange lives in.
func brokerServer(rawURL string) (name string, s server, vhost string, err error) {
	s = server{Protocol: "amqp", ProtocolVersion: protocolVersion, Host: DefaultHost,
		Description: "RabbitMQ, AMQP 0-9-1. Connect with the credentials of RABBIT_URL; they are not part of this document."}
	vhost = "/"
	if rawURL == "" {
		return "localhost", s, vhost, nil
	}
	// A RABBIT_URL listing the nodes of a cluster is described by its first.
	if urls := amqp.SplitURLs(rawURL); len(urls) > 0 {
		rawURL = urls[0]
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		// The URL is not quoted: it may hold a password.
		return "", server{}, "", fmt.Errorf("cannot describe the broker: RABBIT_URL is not an amqp://host URL")
	}
	s.Protocol = strings.ToLower(u.Scheme)
	s.Host = u.Host
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		// amqp091 reads the vhost from the path, "%2f" standing for "/".
		s.Pathname = u.EscapedPath()
		vhost = p
	}
	return sanitize(u.Hostname()), s, vhost, nil
}

// newMessage is the message of e: the envelope with its payload narrowed to
// e's schema, and an example envelope around e's example.
func newMessage(e *domains.EventType, schemaName string) (message, error) {
	eventType := map[string]any{"type": "string"}
	if keys := e.RoutingKeys(); len(keys) == 1 && !e.IsTemplate() {
		eventType["const"] = keys[0]
	} else if keys != nil {
		eventType["enum"] = keys
	}
	payload := map[string]any{
		"allOf": []any{
			map[string]any{"$ref": "#/components/schemas/Envelope"},
			map[string]any{
				"type": "object",
				"properties": map[string]any{
					"event_type": eventType,
					"payload":    map[string]any{"$ref": "#/components/schemas/" + schemaName},
				},
			},
		},
	}
	example, key, err := exampleEnvelope(e)
	if err != nil {
		return message{}, err
	}
	title := "Fact: " + e.RoutingKey()
	if e.Kind() == domains.Command {
		title = "Command: " + e.RoutingKey()
	}
	return message{
		Name:        e.RoutingKey(),
		Title:       title,
		Summary:     e.Description(),
		ContentType: "application/json",
		Payload:     payload,
		Examples:    []messageExample{{Name: sanitize(key), Summary: "The registered example of " + e.Name() + ", in an envelope.", Payload: example}},
		Bindings:    messageBindings{AMQP: amqpMessage{ContentEncoding: "utf-8", BindingVersion: amqpBindingVersion}},
		Tags:        []tag{{Name: e.Domain()}},
		Kind:        string(e.Kind()),
		Result:      e.Result(),
		Domain:      e.Domain(),
	}, nil
}

// exampleEnvelope wraps e's example as a publisher would, with a fixed id
// and time, and returns it with the routing key it travels under.
func exampleEnvelope(e *domains.EventType) (json.RawMessage, string, error) {
	key, err := e.ResolveRoutingKey(e.Example())
	if err != nil {
		return nil, "", fmt.Errorf("cannot resolve the routing key of the example: %w", err)
	}
	env, err := envelope.New(key, e.Example(),
		envelope.WithEventID(envelope.DeterministicIDFromKey(key, "asyncapi-example")),
		envelope.WithTimestamp(exampleTime),
		envelope.WithSource(envelope.Source{Host: "localhost", Type: envelope.TriggerManual, App: "bloodbank-cli"}))
	if err != nil {
		return nil, "", fmt.Errorf("cannot wrap the example in an envelope: %w", err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		return nil, "", fmt.Errorf("cannot encode the example envelope: %w", err)
	}
	return raw, key, nil
}

// parameters declares the placeholders of a template routing key, each read
// from the payload field it names.
func parameters(e *domains.EventType) map[string]parameter {
	if !e.IsTemplate() {
		return nil
	}
	words := strings.Split(e.RoutingKey(), ".")
	keys := e.RoutingKeys()
	out := map[string]parameter{}
	for i, w := range words {
		field, ok := strings.CutPrefix(w, "{")
		if !ok {
			continue
		}
		field = strings.TrimSuffix(field, "}")
		p := parameter{
			Description: "The payload's " + field + " field.",
			Location:    "$message.payload#/payload/" + field,
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if v := strings.Split(k, ".")[i]; !seen[v] {
				seen[v] = true
				p.Enum = append(p.Enum, v)
			}
		}
		out[field] = p
	}
	return out
}

// newOperation is what a service does with e's channel: a command processor
// receives a command and replies with its result; services send facts.
func newOperation(e *domains.EventType, ch string, reg *domains.Registry, channelOf map[*domains.EventType]string) operation {
	op := operation{
		Channel:     reference{Ref: "#/channels/" + ch},
		Messages:    []reference{{Ref: "#/channels/" + ch + "/messages/" + ch}},
		Summary:     e.Description(),
		Tags:        []tag{{Name: e.Domain()}},
		Kind:        string(e.Kind()),
		Domain:      e.Domain(),
		Action:      "send",
		Title:       "Fact: " + e.RoutingKey(),
		Description: "Services publish this fact on the exchange; any service may bind a queue to its routing key.",
		Bindings:    &operationBindings{AMQP: amqpOperation{DeliveryMode: 2, BindingVersion: amqpBindingVersion}},
	}
	if e.Kind() != domains.Command {
		return op
	}
	op.Action = "receive"
	op.Title = "Command: " + e.RoutingKey()
	op.Description = "A command processor consumes this command from its service queue, executes it, and acks it once done."
	op.Bindings = &operationBindings{AMQP: amqpOperation{Ack: true, BindingVersion: amqpBindingVersion}}
	op.Result = e.Result()
	if e.Result() == "" {
		return op
	}
	op.Description += " It then publishes " + e.Result() + " with correlation_ids [the command's event_id]."
	if r, err := reg.LookupKey(e.Result()); err == nil {
		if rc, ok := channelOf[r]; ok {
			op.Reply = &reply{
				Channel:  reference{Ref: "#/channels/" + rc},
				Messages: []reference{{Ref: "#/channels/" + rc + "/messages/" + rc}},
			}
		}
	}
	return op
}

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// sanitize makes s a component key (^[\w\d.\-_]+$) and a JSON Pointer token
// that needs no escaping.
func sanitize(s string) string {
	if s == "" {
		return "_"
	}
	return unsafeID.ReplaceAllString(s, "_")
}

// ids hands out distinct sanitized ids: two names that sanitize alike get a
// numeric suffix, in the registry's order.
type ids map[string]bool

func newIDs() ids { return ids{} }

func (m ids) channel(key string) string { return m.unique(sanitize(key)) }

func (m ids) schema(name string) string { return m.unique(sanitize(name)) }

func (m ids) unique(id string) string {
	out := id
	for n := 2; m[out] || isEnvelopeSchema(out); n++ {
		out = id + "_" + strconv.Itoa(n)
	}
	m[out] = true
	return out
}

// isEnvelopeSchema keeps a payload type named like an envelope component
// from replacing it.
func isEnvelopeSchema(name string) bool {
	switch name {
	case "Envelope", "Source", "AgentContext", "CodeState":
		return true
	}
	return false
}
