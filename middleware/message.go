package middleware

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// What the reliability middleware did with a message whose handler chain
// returned nil, as Disposition reports it.
const (
	DispositionHandled     = ""            // the handler ran and succeeded
	DispositionRedelivered = "redelivered" // Retry sent it back through the broker; not handled yet
	DispositionParked      = "parked"      // Poison put it in the poison queue
	DispositionDuplicate   = "duplicate"   // Dedup skipped it, already handled
)

type dispositionKey struct{}

// Disposition says what the reliability middleware did with msg when its
// handler chain returned nil, which does not always mean the handler
// succeeded. Outer middleware (Dedup, metrics) read it after the chain.
func Disposition(msg *message.Message) string {
	d, _ := msg.Context().Value(dispositionKey{}).(string)
	return d
}

func setDisposition(msg *message.Message, d string) {
	msg.SetContext(context.WithValue(msg.Context(), dispositionKey{}, d))
}

// InternalHeader reports metadata that a copy of a message sent back through
// the broker (delayed, parked or replayed) must not carry over: what the bus
// and broker set on a delivery, and what the reliability middleware sets.
func InternalHeader(k string) bool {
	switch k {
	case envelope.MetaRoutingKey, envelope.MetaMalformed, envelope.MetaRawBody, envelope.MetaTargetHandler, envelope.MetaOriginalRoutingKey:
		return true
	case envelope.MetaDepth, envelope.MetaRoot, envelope.MetaRepeats, envelope.MetaBudgetReset:
		// The event's place in its chain stays with it through delay and
		// poison queues; a replay with a fresh budget clears it on purpose.
		return false
	}
	return strings.HasPrefix(k, "x-") || strings.HasPrefix(k, "bb_poison_") || retryHeaders[k]
}

// wireCopy returns msg as it travels, for sending it to another queue: the
// body it arrived with (else msg re-marshaled) marked MetaRawBody so the
// codec writes it unchanged, and the producer's own headers.
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
	return cmp.Or(msg.Metadata.Get(envelope.MetaRoutingKey), envelope.EventType(msg), message.SubscribeTopicFromCtx(msg.Context()))
}

func setNonEmpty(md message.Metadata, kv map[string]string) {
	for k, v := range kv {
		if v != "" {
			md.Set(k, v)
		}
	}
}

// failureHistory is what a delivery's headers say about earlier attempts.
type failureHistory struct {
	attempts, redeliveries int
	firstFailure           time.Time
}

// historyOf reads the retry headers of msg, unless they are addressed to
// another handler (MetaTargetHandler) than handler.
func historyOf(msg *message.Message, handler string) failureHistory {
	if target := msg.Metadata.Get(envelope.MetaTargetHandler); target != "" && handler != "" && target != handler {
		return failureHistory{}
	}
	h := failureHistory{attempts: positiveHeader(msg, HeaderAttempts), redeliveries: positiveHeader(msg, HeaderRedeliveries)}
	if s := msg.Metadata.Get(HeaderFirstFailure); s != "" {
		h.firstFailure, _ = envelope.ParseTimestamp(s)
	}
	return h
}

// positiveHeader reads a count header; absent, malformed or not positive
// is 0. An absent header skips strconv, whose error copies the input: most
// messages have never failed.
func positiveHeader(msg *message.Message, key string) int {
	if v := msg.Metadata.Get(key); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// Header values are bounded: AMQP headers must fit in one frame (128 KiB by
// default) with everything else.
const (
	maxReasonLen = 4 << 10
	maxStackLen  = 8 << 10
)

// truncateHeader cuts s to at most n bytes, on a rune boundary.
func truncateHeader(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

var discardLogger = slog.New(slog.DiscardHandler)

// problems collects what is wrong with a configuration, for its Validate.
type problems []error

func (p *problems) add(bad bool, format string, args ...any) {
	if bad {
		*p = append(*p, fmt.Errorf(format, args...))
	}
}

func (p problems) err(config string) error {
	if err := errors.Join(p...); err != nil {
		return fmt.Errorf("invalid middleware %s: %w", config, err)
	}
	return nil
}
