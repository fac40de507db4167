package middleware

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
)

// Causation is the handler middleware that links what a handler produces to
// the event it handles (its cause), in any Watermill router:
//
//   - the incoming message's context gets envelope.WithCause(ctx, its event id),
//     so that bus.Bus.Publish(msg.Context(), ...) and a RecordingPublisher
//     stamp what the handler publishes itself with correlation_ids =
//     [incoming event id];
//   - every message the handler returns that has no correlation ids gets
//     [incoming event id] (envelope.SetCorrelationIDs), and a context carrying the
//     cause, so that the router's RecordingPublisher records its link;
//   - a returned message without an agent context inherits the incoming
//     message's (envelope.MetaAgentContext), as the wire contract requires of an
//     agent.thread.response answering an agent.thread.prompt; a returned
//     message that has one keeps it.
//
// Returned messages that already carry correlation ids keep them. A returned
// message with the incoming message's own id (a handler forwarding its
// input) is left alone, since an event cannot cause itself, and so is one
// marked envelope.MetaRawBody, an existing event whose body travels unchanged.
// An incoming message whose UUID is not a UUID (not a Bloodbank event) is
// handled without causation.
//
// What a handler must do to get links: publish with the context it is given
// (msg.Context(), or the ctx argument of a bus.HandlerFunc), or return its
// messages to the router. A handler that publishes with
// context.Background() breaks the chain. Watermill's own CorrelationID
// middleware does neither: it stamps a different metadata key, and only on
// returned messages.
func Causation(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		cause, err := uuid.Parse(msg.UUID)
		if err != nil {
			return h(msg)
		}
		msg.SetContext(envelope.WithCause(msg.Context(), cause))
		produced, err := h(msg)
		agentContext := msg.Metadata.Get(envelope.MetaAgentContext)
		for _, out := range produced {
			if out == nil || out == msg || causeIsSelf(out, cause) || out.Metadata.Get(envelope.MetaRawBody) != "" {
				continue
			}
			if out.Metadata.Get(envelope.MetaCorrelationIDs) == "" {
				envelope.SetCorrelationIDs(out, cause)
			}
			if agentContext != "" && out.Metadata.Get(envelope.MetaAgentContext) == "" {
				out.Metadata.Set(envelope.MetaAgentContext, agentContext)
			}
			if _, ok := envelope.CauseFromContext(out.Context()); !ok {
				out.SetContext(envelope.WithCause(out.Context(), cause))
			}
		}
		return produced, err
	}
}

// LinkRecorder records correlation links without ever failing or blocking
// for long. *correlation.Recorder implements it; a correlation.Store does
// not, on purpose: its Record can fail and wait on Redis, and correlation
// must never hold up the bus.
type LinkRecorder interface {
	Record(ctx context.Context, links ...correlation.Link)
}

var _ LinkRecorder = (*correlation.Recorder)(nil)

// LinkMetadataParams is what a RecordingPublisherConfig.LinkMetadata hook
// gets.
type LinkMetadataParams struct {
	// Topic is the topic the message was published to (the routing key on
	// a Bloodbank bus).
	Topic string
	// Message is the published message. Do not modify it.
	Message *message.Message
}

// DefaultLinkMetadata is the metadata recorded with each link by default:
// "event_type" (envelope.EventType, or the topic for a message without one) and
// "source_app" when the message has a source app. The Python publisher
// stores whatever its caller passes (usually nothing, {}); these two keys
// are what a person reading a debug dump needs first.
func DefaultLinkMetadata(p LinkMetadataParams) map[string]any {
	eventType := envelope.EventType(p.Message)
	if eventType == "" {
		eventType = p.Topic
	}
	md := map[string]any{"event_type": eventType}
	if app := p.Message.Metadata.Get(envelope.MetaSourceApp); app != "" {
		md["source_app"] = app
	}
	return md
}

// RecordingPublisherConfig configures a RecordingPublisher. The zero value
// is the default configuration.
type RecordingPublisherConfig struct {
	// LinkMetadata returns the metadata recorded with a message's link; it
	// must encode to a JSON object, and a nil map is stored as {}.
	// Optional; default DefaultLinkMetadata.
	LinkMetadata func(LinkMetadataParams) map[string]any

	// Logger receives a debug line for a message whose parents are known
	// but whose UUID is not a UUID, so it cannot be recorded. Optional;
	// default logs nothing. Failed writes are the LinkRecorder's to log.
	Logger *slog.Logger
}

func (c *RecordingPublisherConfig) setDefaults() {
	if c.LinkMetadata == nil {
		c.LinkMetadata = DefaultLinkMetadata
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// RecordingPublisher is a message.Publisher decorator that records the
// correlation link of every message it publishes. For each message it:
//
//  1. stamps correlation ids [cause] on a message that has none when the
//     message's context carries a cause (envelope.CauseFromContext), as
//     Causation and bus.Bus.Publish arrange for a handler's publishes;
//  2. publishes through the decorated publisher;
//  3. only once that publish returned nil (on RabbitMQ: confirmed), records
//     correlation.Link{Child: message id, Parents: its correlation ids,
//     Metadata: LinkMetadata(...)} through the LinkRecorder. The links of one
//     Publish call go in one Record call, which the correlation store writes
//     in one pipeline.
//
// A message without parents records nothing, nor does a failed Publish
// (none of its messages: a publisher error does not say which were sent).
// A message is never stamped with itself as its cause (a handler forwarding
// the message it handles), and a message marked envelope.MetaRawBody (parked or
// replayed: an existing event whose body travels unchanged, so stamped
// metadata would not reach the wire) is neither stamped nor recorded; its
// link was recorded when it was first published.
// The Python publisher records before it publishes; recording after the
// confirm means the graph never holds an event that was never published.
//
// Recording can neither fail nor slow a publish beyond the LinkRecorder's
// bound: with a correlation.Recorder, a Redis that is down costs a counter
// (Recorder.Failed) and a rate-limited warning, never an error.
type RecordingPublisher struct {
	pub message.Publisher
	rec LinkRecorder
	cfg RecordingPublisherConfig
}

var _ message.Publisher = (*RecordingPublisher)(nil)

// NewRecordingPublisher decorates pub (required) so that it records links
// through rec. cfg is optional: pass at most one; the zero value is the
// default. A nil rec records nothing, and the publisher still stamps
// correlation ids from the context.
//
// With a bus.Bus:
//
//	b.DecoratePublisher(func(p message.Publisher) message.Publisher {
//		return middleware.NewRecordingPublisher(p, rec)
//	})
//
// With a Watermill router, for the messages handlers return, use
// RecordingPublisherDecorator.
func NewRecordingPublisher(pub message.Publisher, rec LinkRecorder, cfg ...RecordingPublisherConfig) *RecordingPublisher {
	var c RecordingPublisherConfig
	if len(cfg) > 0 {
		c = cfg[0]
	}
	c.setDefaults()
	return &RecordingPublisher{pub: pub, rec: rec, cfg: c}
}

// RecordingPublisherDecorator is NewRecordingPublisher as a Watermill
// publisher decorator, for router.AddPublisherDecorators: the messages every
// handler of the router returns are then recorded once published.
func RecordingPublisherDecorator(rec LinkRecorder, cfg ...RecordingPublisherConfig) message.PublisherDecorator {
	return func(pub message.Publisher) (message.Publisher, error) {
		return NewRecordingPublisher(pub, rec, cfg...), nil
	}
}

// Publish stamps, publishes and then records msgs; see RecordingPublisher.
func (p *RecordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	// parents[i] is the parents of msgs[i], read once: the decorated
	// publisher may not change metadata, but it need not be trusted to.
	var parents [][]uuid.UUID
	linked := 0
	for i, msg := range msgs {
		if msg == nil || msg.Metadata.Get(envelope.MetaRawBody) != "" {
			continue
		}
		ids := envelope.CorrelationIDs(msg)
		if len(ids) == 0 {
			if cause, ok := envelope.CauseFromContext(msg.Context()); ok && cause != uuid.Nil && !causeIsSelf(msg, cause) {
				ids = []uuid.UUID{cause}
				envelope.SetCorrelationIDs(msg, cause)
			}
		}
		if len(ids) == 0 || p.rec == nil {
			continue
		}
		if parents == nil {
			parents = make([][]uuid.UUID, len(msgs))
		}
		parents[i] = ids
		linked++
	}
	if err := p.pub.Publish(topic, msgs...); err != nil {
		return err
	}
	if linked == 0 {
		return nil
	}
	links := make([]correlation.Link, 0, linked)
	var ctx context.Context
	for i, msg := range msgs {
		if len(parents[i]) == 0 {
			continue
		}
		child, err := uuid.Parse(msg.UUID)
		if err != nil {
			p.cfg.Logger.Debug("correlation link not recorded: message UUID is not a UUID",
				slog.String("message_uuid", msg.UUID), slog.String("topic", topic))
			continue
		}
		if ctx == nil {
			ctx = msg.Context()
		}
		links = append(links, correlation.Link{
			Child:    child,
			Parents:  parents[i],
			Metadata: p.cfg.LinkMetadata(LinkMetadataParams{Topic: topic, Message: msg}),
		})
	}
	if len(links) > 0 {
		p.rec.Record(ctx, links...)
	}
	return nil
}

// causeIsSelf reports whether msg is the event id: a handler forwarding or
// parking the message it handles publishes with that message's own cause.
func causeIsSelf(msg *message.Message, id uuid.UUID) bool {
	own, err := uuid.Parse(msg.UUID)
	return err == nil && own == id
}

// Close closes the decorated publisher. The LinkRecorder is the caller's:
// close it after the publisher, so that the last links are written.
func (p *RecordingPublisher) Close() error { return p.pub.Close() }
