package middleware

import (
	"cmp"
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
)

// Causation is the handler middleware that puts the handled event into the
// message's context (envelope.WithCause), so what the handler publishes with
// it gets correlation_ids = [incoming id]. A returned message lacking them
// gets them too, and the child's depth and root (envelope.StampChild) when
// the handled event's are known (from Guard, its headers, or because it is
// a root), and inherits a missing agent context
// (envelope.MetaAgentContext), as the wire contract requires of a response.
// The incoming event itself and envelope.MetaRawBody messages are left
// alone; an incoming message whose UUID is not a UUID gives no cause.
func Causation(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		cause, err := uuid.Parse(msg.UUID)
		if err != nil {
			return h(msg)
		}
		msg.SetContext(envelope.WithCause(msg.Context(), cause))
		if _, ok := envelope.LineageFromContext(msg.Context()); !ok {
			// No guard ahead: the headers, or a root, still tell the children.
			if l, ok := envelope.KnownLineage(msg); ok {
				msg.SetContext(envelope.WithLineage(msg.Context(), l))
			}
		}
		produced, err := h(msg)
		agentContext := msg.Metadata.Get(envelope.MetaAgentContext)
		for _, out := range produced {
			if out == nil || out == msg || causeIsSelf(out, cause) || out.Metadata.Get(envelope.MetaRawBody) != "" {
				continue
			}
			if out.Metadata.Get(envelope.MetaCorrelationIDs) == "" {
				envelope.SetCorrelationIDs(out, cause)
			}
			envelope.StampChild(msg.Context(), out)
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
// not, on purpose: correlation must never hold up the bus.
type LinkRecorder interface {
	Record(ctx context.Context, links ...correlation.Link)
}

var _ LinkRecorder = (*correlation.Recorder)(nil)

// LinkMetadataParams is what a RecordingPublisherConfig.LinkMetadata hook gets.
type LinkMetadataParams struct {
	Topic   string           // on a Bloodbank bus, the routing key
	Message *message.Message // the published message; do not modify it
}

// DefaultLinkMetadata is the metadata recorded with each link by default:
// "event_type" (envelope.EventType, else the topic), "source_app" if any,
// "replay_of" from envelope.WithReplayOf, and the event's place in its
// chain (envelope.MetaDepth and friends) as "depth", "root" and "repeats",
// so that the runaway guard resolves a child published without those
// headers (by Python) in one round trip.
func DefaultLinkMetadata(p LinkMetadataParams) map[string]any {
	md := map[string]any{"event_type": cmp.Or(envelope.EventType(p.Message), p.Topic)}
	if app := p.Message.Metadata.Get(envelope.MetaSourceApp); app != "" {
		md["source_app"] = app
	}
	if l, ok := envelope.LineageOf(p.Message); ok {
		md[LinkMetaDepth], md[LinkMetaRoot] = l.Depth, l.Root.String()
		if rep := p.Message.Metadata.Get(envelope.MetaRepeats); rep != "" {
			md[LinkMetaRepeats] = rep
		}
	}
	if original, ok := envelope.ReplayOfFromContext(p.Message.Context()); ok {
		md["replay_of"] = original.String()
	}
	return md
}

// RecordingPublisherConfig configures a RecordingPublisher. The zero value
// is the default configuration.
type RecordingPublisherConfig struct {
	// LinkMetadata returns the metadata recorded with a message's link (a
	// JSON object; nil is {}). Optional; default DefaultLinkMetadata.
	LinkMetadata func(LinkMetadataParams) map[string]any
	// LinkCost returns the cost a message reports, rolled up on the root of
	// its chain with its link, or nil. Optional; default DefaultLinkCost.
	LinkCost func(LinkMetadataParams) *correlation.Cost
	// Logger receives a debug line for a message whose UUID is not a UUID,
	// so its link cannot be recorded. Optional; default logs nothing.
	Logger *slog.Logger
}

// RecordingPublisher is a message.Publisher decorator that stamps
// correlation ids [cause] from the context (envelope.CauseFromContext) on a
// message that has none, and the child's depth and root
// (envelope.StampChild) on one that has no such headers, and, only once Publish returned nil (on RabbitMQ:
// confirmed), records the whole call's links in one LinkRecorder.Record, so
// the graph never holds an unpublished event. A failed Publish records
// nothing, as its error does not say what was sent. A message marked
// envelope.MetaRawBody was recorded when first published and is left alone.
// Recording never fails a publish.
type RecordingPublisher struct {
	pub message.Publisher
	rec LinkRecorder
	cfg RecordingPublisherConfig
}

var _ message.Publisher = (*RecordingPublisher)(nil)

// NewRecordingPublisher decorates pub (required) so that it records links
// through rec; a nil rec records nothing but still stamps. cfg is optional:
// pass at most one. On a router, use RecordingPublisherDecorator.
func NewRecordingPublisher(pub message.Publisher, rec LinkRecorder, cfg ...RecordingPublisherConfig) *RecordingPublisher {
	var c RecordingPublisherConfig
	if len(cfg) > 0 {
		c = cfg[0]
	}
	if c.LinkMetadata == nil {
		c.LinkMetadata = DefaultLinkMetadata
	}
	if c.LinkCost == nil {
		c.LinkCost = DefaultLinkCost
	}
	c.Logger = cmp.Or(c.Logger, discardLogger)
	return &RecordingPublisher{pub: pub, rec: rec, cfg: c}
}

// RecordingPublisherDecorator is NewRecordingPublisher for a router's
// AddPublisherDecorators, which records what its handlers return.
func RecordingPublisherDecorator(rec LinkRecorder, cfg ...RecordingPublisherConfig) message.PublisherDecorator {
	return func(pub message.Publisher) (message.Publisher, error) {
		return NewRecordingPublisher(pub, rec, cfg...), nil
	}
}

// Publish stamps, publishes and then records msgs; see RecordingPublisher.
func (p *RecordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	var links []correlation.Link
	var linked []*message.Message // linked[i] is the message of links[i]
	for _, msg := range msgs {
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
		if cause, ok := envelope.CauseFromContext(msg.Context()); ok && !causeIsSelf(msg, cause) {
			envelope.StampChild(msg.Context(), msg)
		}
		if len(ids) == 0 || p.rec == nil {
			continue
		}
		child, err := uuid.Parse(msg.UUID)
		if err != nil {
			p.cfg.Logger.Debug("correlation link not recorded: message UUID is not a UUID",
				slog.String("message_uuid", msg.UUID), slog.String("topic", topic))
			continue
		}
		links = append(links, correlation.Link{Child: child, Parents: ids})
		linked = append(linked, msg)
	}
	if err := p.pub.Publish(topic, msgs...); err != nil || len(links) == 0 {
		return err
	}
	for i, msg := range linked {
		params := LinkMetadataParams{Topic: topic, Message: msg}
		links[i].Metadata = p.cfg.LinkMetadata(params)
		links[i].Cost = p.cfg.LinkCost(params)
	}
	p.rec.Record(linked[0].Context(), links...)
	return nil
}

// Keys of the link metadata DefaultLinkMetadata writes for the event's
// place in its chain; Guard reads them.
const (
	LinkMetaDepth   = "depth"
	LinkMetaRoot    = "root"
	LinkMetaRepeats = "repeats"
)

// causeIsSelf reports whether msg is the event id: a handler forwarding or
// parking the message it handles publishes with that message's own cause.
func causeIsSelf(msg *message.Message, id uuid.UUID) bool {
	own, err := uuid.Parse(msg.UUID)
	return err == nil && own == id
}

// Close closes the decorated publisher. The LinkRecorder is the caller's:
// close it after the publisher, so that the last links are written.
func (p *RecordingPublisher) Close() error { return p.pub.Close() }
