package middleware

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// What the reliability middleware did with a message whose handler chain
// returned nil. Read it with Disposition once the chain returned.
const (
	// DispositionHandled: the handler ran and succeeded (the zero value,
	// written as "").
	DispositionHandled = ""
	// DispositionRedelivered: Retry sent the message back through the
	// broker for a later attempt; the handler has not succeeded yet.
	DispositionRedelivered = "redelivered"
	// DispositionParked: Poison put the message in the poison queue.
	DispositionParked = "parked"
	// DispositionDuplicate: Dedup skipped the message, whose handler had
	// already succeeded for the same event id.
	DispositionDuplicate = "duplicate"
)

type dispositionKey struct{}

// Disposition says what the reliability middleware did with msg when its
// handler chain returned nil: a nil error does not always mean the handler
// succeeded. An outer middleware (Dedup, metrics) reads it after calling
// the inner handler; it is DispositionHandled otherwise.
func Disposition(msg *message.Message) string {
	d, _ := msg.Context().Value(dispositionKey{}).(string)
	return d
}

func setDisposition(msg *message.Message, d string) {
	msg.SetContext(context.WithValue(msg.Context(), dispositionKey{}, d))
}

// InternalHeader reports metadata that a copy of a message sent back through
// the broker (to a delay queue, the poison queue, or replayed) must not
// carry over: what the bus and the broker set on a delivery, and what the
// reliability middleware sets itself each time.
func InternalHeader(k string) bool {
	switch k {
	case envelope.MetaRoutingKey, envelope.MetaMalformed, envelope.MetaRawBody, envelope.MetaTargetHandler, envelope.MetaOriginalRoutingKey:
		return true
	}
	return strings.HasPrefix(k, "x-") || strings.HasPrefix(k, "bb_poison_") || retryHeaders[k]
}

// wireCopy returns a new message that carries msg as it travels, for
// sending it to another queue: the same UUID (event id), the body it arrived
// with byte for byte (envelope.OriginalBody), or else msg re-marshaled by the
// wire codec, or else, for a message that is not a Bloodbank event, its
// Payload. MetaRawBody is set so that the codec writes that body unchanged.
// Headers that are not envelope fields are kept (a producer's own headers),
// except those InternalHeader names.
func wireCopy(msg *message.Message) *message.Message {
	body := envelope.OriginalBody(msg)
	if body == nil {
		if pub, err := (envelope.Codec{}).Marshal(msg); err == nil {
			body = pub.Body
		} else {
			body = msg.Payload
		}
	}
	out := message.NewMessage(msg.UUID, bytes.Clone(body))
	for k, v := range msg.Metadata {
		if envelope.IsBodyKey(k) || InternalHeader(k) {
			continue
		}
		out.Metadata[k] = v
	}
	out.Metadata.Set(envelope.MetaRawBody, "true")
	return out
}

// routingKeyOf is the routing key a message was first published with: the
// one it was delivered under (which the codec restores from
// MetaOriginalRoutingKey for a message back from a delay queue), else its
// event type, else the topic the handler subscribed to.
func routingKeyOf(msg *message.Message) string {
	if k := msg.Metadata.Get(envelope.MetaRoutingKey); k != "" {
		return k
	}
	if k := envelope.EventType(msg); k != "" {
		return k
	}
	return message.SubscribeTopicFromCtx(msg.Context())
}

// failureHistory is what the headers of a delivery say about earlier
// attempts at it.
type failureHistory struct {
	attempts     int
	redeliveries int
	firstFailure time.Time
}

// historyOf reads the retry headers of msg, for handler. Headers addressed
// to another handler (MetaTargetHandler) describe that handler's attempts,
// not this one's, and are ignored.
func historyOf(msg *message.Message, handler string) failureHistory {
	if target := msg.Metadata.Get(envelope.MetaTargetHandler); target != "" && handler != "" && target != handler {
		return failureHistory{}
	}
	var h failureHistory
	h.attempts = positiveHeader(msg, HeaderAttempts)
	h.redeliveries = positiveHeader(msg, HeaderRedeliveries)
	if s := msg.Metadata.Get(HeaderFirstFailure); s != "" {
		if t, err := envelope.ParseTimestamp(s); err == nil {
			h.firstFailure = t
		}
	}
	return h
}

// positiveHeader reads a count header; absent, malformed or not positive
// is 0. Most messages have never failed: an absent header must not cost
// strconv's error, which copies the input.
func positiveHeader(msg *message.Message, key string) int {
	v := msg.Metadata.Get(key)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return n
	}
	return 0
}

// formatFailureTime writes a failure time in headers: RFC 3339, UTC, microseconds
// (envelope.TimestampLayout, what every timestamp on the bus looks like).
func formatFailureTime(t time.Time) string { return envelope.FormatTimestamp(t) }

// Header values are bounded: AMQP headers must fit in one frame (128 KiB by
// default) with everything else.
const (
	maxReasonLen = 4 << 10
	maxStackLen  = 8 << 10
)

// truncateHeader bounds a header value: AMQP headers must fit in one frame.
func truncateHeader(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isUTF8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isUTF8Start(b byte) bool { return b&0xC0 != 0x80 }
