package envelope

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
)

// Metadata keys of the envelope fields (see the package doc). They are part
// of the API: middleware in any Watermill router can read them.
const (
	// MetaEventType holds event_type, which is also the routing key.
	MetaEventType = "bb_event_type"
	// MetaTimestamp holds the timestamp in TimestampLayout.
	MetaTimestamp = "bb_timestamp"
	// MetaVersion holds the envelope version.
	MetaVersion = "bb_version"
	// MetaSourceHost holds source.host.
	MetaSourceHost = "bb_source_host"
	// MetaSourceType holds source.type.
	MetaSourceType = "bb_source_type"
	// MetaSourceApp holds source.app; absent when null.
	MetaSourceApp = "bb_source_app"
	// MetaSourceMeta holds source.meta as a JSON object; absent when null.
	MetaSourceMeta = "bb_source_meta"
	// MetaCorrelationIDs holds correlation_ids, comma-separated; absent when empty.
	MetaCorrelationIDs = "bb_correlation_ids"
	// MetaAgentContext holds agent_context as a JSON object, with the
	// members of it and of its code_state that this package does not know;
	// absent when null.
	MetaAgentContext = "bb_agent_context"
	// MetaUnknown holds, as a JSON object, the top-level members of the
	// body that this package does not know, and under "source" those of the
	// source object, in the order they came; absent when there are none.
	MetaUnknown = "bb_unknown"

	// MetaMalformed is set by the codec on a message whose body was not a
	// valid envelope; it holds the reason, and Payload the original body.
	MetaMalformed = "bb_malformed"
	// MetaRoutingKey holds the routing key a message was delivered under:
	// its original routing key when it came back through a delay queue.
	MetaRoutingKey = "bb_routing_key"
	// MetaOriginalRoutingKey is set, as a header, on a message sent to a
	// delay or poison queue: the routing key it was first published with,
	// which dispatch uses when the message comes back.
	MetaOriginalRoutingKey = "bb_original_routing_key"
	// MetaRawBody, when set, makes the codec write Payload as the AMQP body
	// unchanged, so that parking and replaying keep the producer's bytes. It
	// never travels as a header.
	MetaRawBody = "bb_raw_body"
	// MetaTargetHandler, when set on a redelivered message, names the one
	// handler of the service it is for (a retry or a replay).
	MetaTargetHandler = "bb_target_handler"
	// MetaReplay is the header bb replay sets on each event it delivers
	// again; it holds the replay's id. Deduplication and a command's side
	// effect ids take it into account, so that a replay runs once more.
	MetaReplay = "x-bb-replay"
)

// envelopeKeys are the metadata keys that the codec writes into the body;
// every other metadata key travels as an AMQP header.
var envelopeKeys = map[string]bool{
	MetaEventType: true, MetaTimestamp: true, MetaVersion: true, MetaSourceHost: true,
	MetaSourceType: true, MetaSourceApp: true, MetaSourceMeta: true,
	MetaCorrelationIDs: true, MetaAgentContext: true, MetaUnknown: true,
}

// IsBodyKey reports whether a metadata key is an envelope field that
// travels in the body rather than as a header.
func IsBodyKey(key string) bool { return envelopeKeys[key] }

// NewMessage turns an envelope into a Watermill message. It fails only when
// the envelope is invalid or its source or agent meta cannot be encoded. A
// payload that is an object but not valid JSON is found when the message is
// written (Codec.Marshal fails with the reason Validate gives): reading the
// payload here as well would make every publish read it twice.
func NewMessage(e Envelope) (*message.Message, error) {
	if err := e.validate(false); err != nil {
		return nil, err
	}
	msg := message.NewMessage(e.EventID.String(), message.Payload(e.Payload))
	if err := setEnvelopeMetadata(msg.Metadata, e, nil); err != nil {
		return nil, err
	}
	return msg, nil
}

// setEnvelopeMetadata writes e's fields as metadata. w, when e was just
// read from it, lends its strings where they already are in the form
// written here, which spares a consumer formatting them again.
func setEnvelopeMetadata(md message.Metadata, e Envelope, w *wireEnvelope) error {
	md[MetaEventType] = e.EventType
	if w != nil && isTimestampText(w.Timestamp, e.Timestamp) {
		md[MetaTimestamp] = w.Timestamp
	} else {
		md[MetaTimestamp] = FormatTimestamp(e.Timestamp)
	}
	md[MetaVersion] = cmp.Or(e.Version, Version)
	md[MetaSourceHost] = e.Source.Host
	md[MetaSourceType] = string(e.Source.Type)
	if e.Source.App != "" {
		md[MetaSourceApp] = e.Source.App
	}
	if e.Source.Meta != nil {
		b, err := json.Marshal(e.Source.Meta, verbatimOptions)
		if err != nil {
			return fmt.Errorf("cannot encode source.meta of %s: %w", e.EventID, err)
		}
		md[MetaSourceMeta] = string(b)
	}
	if len(e.CorrelationIDs) > 0 {
		if w != nil && len(w.CorrelationIDs) == len(e.CorrelationIDs) && allCanonicalIDs(w.CorrelationIDs) {
			md[MetaCorrelationIDs] = strings.Join(w.CorrelationIDs, ",")
		} else {
			md[MetaCorrelationIDs] = JoinIDs(e.CorrelationIDs)
		}
	}
	if e.AgentContext != nil {
		b, err := json.Marshal(e.agentContextWire(new(wireBody)), verbatimOptions)
		if err != nil {
			return fmt.Errorf("cannot encode agent_context of %s: %w", e.EventID, err)
		}
		md[MetaAgentContext] = string(b)
	}
	if len(e.unknown.top) > 0 || len(e.unknown.source) > 0 { // {"trace":…,"source":{"pid":…}}
		w := &wireEnvelope{Unknown: e.unknown.top}
		if len(e.unknown.source) > 0 {
			w.Source = &wireSource{Unknown: e.unknown.source}
		}
		b, err := json.Marshal(w, verbatimOptions, json.OmitZeroStructFields(true))
		if err != nil {
			return fmt.Errorf("cannot encode the unknown members of %s: %w", e.EventID, err)
		}
		md[MetaUnknown] = string(b)
	}
	return nil
}

// FromMessage rebuilds the envelope a message carries. It fails for
// a message marked malformed, or one that was not built from an envelope.
func FromMessage(msg *message.Message) (Envelope, error) {
	if reason := msg.Metadata.Get(MetaMalformed); reason != "" {
		return Envelope{}, &MalformedError{Reason: reason}
	}
	md := msg.Metadata
	var problems []string
	id, err := uuid.Parse(msg.UUID)
	if err != nil {
		problems = append(problems, fmt.Sprintf("message uuid %q is not a UUID", truncate(msg.UUID, 64)))
	}
	env := Envelope{
		EventID:   id,
		EventType: md.Get(MetaEventType),
		Version:   md.Get(MetaVersion),
		Source:    Source{Host: md.Get(MetaSourceHost), Type: TriggerType(md.Get(MetaSourceType)), App: md.Get(MetaSourceApp)},
		Payload:   []byte(msg.Payload),
	}
	if env.EventType == "" {
		problems = append(problems, "metadata "+MetaEventType+" is missing: build messages with envelope.NewMessage")
	}
	if ts := md.Get(MetaTimestamp); ts == "" {
		env.Timestamp = time.Now().UTC().Truncate(time.Microsecond)
	} else if env.Timestamp, err = ParseTimestamp(ts); err != nil {
		problems = append(problems, MetaTimestamp+": "+err.Error())
	}
	if m := md.Get(MetaSourceMeta); m != "" {
		if err := json.Unmarshal([]byte(m), &env.Source.Meta, decodeOptions); err != nil {
			problems = append(problems, MetaSourceMeta+": not a JSON object")
		}
	}
	if env.CorrelationIDs, err = ParseIDs(md.Get(MetaCorrelationIDs)); err != nil {
		problems = append(problems, MetaCorrelationIDs+": "+err.Error())
	}
	if ac := md.Get(MetaAgentContext); ac != "" {
		var w wireAgentContext
		if err := json.Unmarshal([]byte(ac), &w, decodeOptions); err != nil {
			problems = append(problems, MetaAgentContext+": not a JSON object")
		} else {
			env.AgentContext = w.agentContext(&env.unknown)
		}
	}
	if u := md.Get(MetaUnknown); u != "" {
		// Read as a body: a member with a known name lands in its field
		// and is dropped, so it cannot be written twice.
		var w wireEnvelope
		if err := json.Unmarshal([]byte(u), &w, decodeOptions); err != nil {
			problems = append(problems, MetaUnknown+": not a JSON object")
		} else {
			env.unknown.top = w.Unknown
			if w.Source != nil {
				env.unknown.source = w.Source.Unknown
			}
		}
	}
	if len(problems) > 0 {
		return Envelope{}, &InvalidError{Problems: problems}
	}
	return env, nil
}

// EventType is the event type (and routing key) of a message.
func EventType(msg *message.Message) string { return msg.Metadata.Get(MetaEventType) }

// Malformed returns the reason a message's body was not a valid envelope.
func Malformed(msg *message.Message) (reason string, ok bool) {
	reason = msg.Metadata.Get(MetaMalformed)
	return reason, reason != ""
}

// CorrelationIDs returns the parent event ids a message carries; ids that
// do not parse are skipped.
func CorrelationIDs(msg *message.Message) []uuid.UUID {
	ids, _ := ParseIDs(msg.Metadata.Get(MetaCorrelationIDs))
	return ids
}

// SetCorrelationIDs replaces the parent event ids of a message.
func SetCorrelationIDs(msg *message.Message, ids ...uuid.UUID) {
	if len(ids) == 0 {
		delete(msg.Metadata, MetaCorrelationIDs)
		return
	}
	msg.Metadata.Set(MetaCorrelationIDs, JoinIDs(ids))
}

// JoinIDs writes ids comma-separated, the form of MetaCorrelationIDs.
func JoinIDs(ids []uuid.UUID) string {
	var b strings.Builder
	b.Grow(len(ids) * 37)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(id.String())
	}
	return b.String()
}

// ParseIDs reads a comma-separated list of UUIDs; an empty string is no ids.
func ParseIDs(s string) ([]uuid.UUID, error) {
	if s == "" {
		return []uuid.UUID{}, nil
	}
	parts := strings.Split(s, ",")
	ids := make([]uuid.UUID, 0, len(parts))
	var bad []string
	for _, p := range parts {
		id, err := uuid.Parse(strings.TrimSpace(p))
		if err != nil {
			bad = append(bad, truncate(p, 40))
			continue
		}
		ids = append(ids, id)
	}
	if len(bad) > 0 {
		return ids, fmt.Errorf("not UUIDs: %s", strings.Join(bad, ", "))
	}
	return ids, nil
}

// canonicalID is id's text: s, the text it was read from, when s is
// already the canonical form (lower case, no braces or urn: prefix).
func canonicalID(s string, id uuid.UUID) string {
	if isCanonicalID(s) {
		return s
	}
	return id.String()
}

// isCanonicalID reports whether s, a string uuid.Parse accepted, is in the
// form uuid.UUID.String writes.
func isCanonicalID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'F' {
			return false
		}
	}
	return true
}

func allCanonicalIDs(ids []string) bool {
	for _, s := range ids {
		if !isCanonicalID(s) {
			return false
		}
	}
	return true
}

// isTimestampText reports whether s is t as FormatTimestamp writes it.
func isTimestampText(s string, t time.Time) bool {
	var buf [len(TimestampLayout) + 8]byte
	return string(t.UTC().AppendFormat(buf[:0], TimestampLayout)) == s
}
