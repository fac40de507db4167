package envelope

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Codec is the Bloodbank v1 wire codec (see the package doc) as a
// watermill-amqp Marshaler; its DefaultMarshaler would put the payload
// alone in the body.
//
// Unmarshal never returns an error: watermill-amqp requeues a delivery
// whose unmarshal fails before any middleware sees it, so one bad body
// would loop forever.
//
// watermill-amqp replaces the context of every message it delivers, so
// OriginalBody does not reach its middleware: a parked event is written as
// Marshal writes it (a "+00:00" timestamp becomes "Z") unless the app keeps
// the body, as examples/watermill-amqp does.
type Codec struct{}

// Marshal writes msg as an AMQP publishing. A message marked malformed (or
// MetaRawBody) is written with its body unchanged. Metadata that is not an
// envelope field travels as string headers.
func (Codec) Marshal(msg *message.Message) (amqp091.Publishing, error) {
	var body []byte
	if _, malformed := Malformed(msg); malformed || msg.Metadata.Get(MetaRawBody) != "" {
		body = msg.Payload
	} else {
		var err error
		if body, err = encodeMessage(msg); err != nil {
			return amqp091.Publishing{}, fmt.Errorf("cannot marshal message %s: %w", msg.UUID, err)
		}
	}
	var headers amqp091.Table
	for k, v := range msg.Metadata {
		if envelopeKeys[k] || k == MetaRoutingKey || k == MetaRawBody {
			continue
		}
		if headers == nil {
			headers = amqp091.Table{}
		}
		headers[k] = v
	}
	return amqp091.Publishing{
		Headers:         headers,
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp091.Persistent,
		MessageId:       msg.UUID,
		Timestamp:       time.Now(),
		Body:            body,
	}, nil
}

// encodeMessage writes the envelope a message carries, checked again since
// middleware may have changed it: a writer never puts a body on the wire
// that a reader would reject. Encoding checks the payload's syntax as it
// copies it; only when that fails does Validate read it again, to say why.
func encodeMessage(msg *message.Message) ([]byte, error) {
	env, err := FromMessage(msg)
	if err != nil {
		return nil, err
	}
	if err := env.validate(false); err != nil {
		return nil, err
	}
	body, err := env.MarshalJSON()
	if err != nil {
		if verr := env.Validate(); verr != nil {
			return nil, verr
		}
		return nil, err
	}
	return body, nil
}

// Unmarshal reads a delivery into a message. It never fails; see Codec.
func (Codec) Unmarshal(d amqp091.Delivery) (*message.Message, error) {
	return DecodeDelivery(d.Body, d.MessageId, d.RoutingKey, d.Headers), nil
}

// DecodeDelivery is the transport-neutral half of Unmarshal: body, AMQP
// message_id, routing key and headers in, a message out, marked malformed
// when the body is not a valid envelope.
//
// The message's payload is a slice of body, not a copy: body must not be
// changed afterwards (a delivery's body never is).
func DecodeDelivery(body []byte, messageID, routingKey string, headers amqp091.Table) *message.Message {
	env, w, err := decode(body, false, true)
	var msg *message.Message
	if err != nil {
		// Keep an id the operator can search for.
		if messageID == "" {
			messageID = uuid.NewString()
		}
		msg = message.NewMessage(messageID, body)
		msg.Metadata[MetaMalformed] = err.Error()
		var me *MalformedError
		if errors.As(err, &me) {
			msg.Metadata[MetaMalformed] = me.Reason
		}
	} else {
		msg = message.NewMessage(canonicalID(w.EventID, env.EventID), message.Payload(env.Payload))
		if err := setEnvelopeMetadata(msg.Metadata, env, w); err != nil {
			msg = message.NewMessage(env.EventID.String(), body)
			msg.Metadata[MetaMalformed] = err.Error()
		}
	}
	for k, v := range headers {
		// Only the codec decides what is malformed and under which key a
		// message arrived: a header cannot claim either.
		if envelopeKeys[k] || k == MetaMalformed || k == MetaRoutingKey || k == MetaRawBody {
			continue
		}
		if s, ok := headerString(v); ok {
			msg.Metadata[k] = s
		}
	}
	if orig, ok := headers[MetaOriginalRoutingKey].(string); ok && orig != "" {
		routingKey = orig
	}
	if routingKey != "" {
		msg.Metadata[MetaRoutingKey] = routingKey
	}
	return msg
}

// headerString renders an AMQP header value as metadata text. Headers such
// as x-death are tables and arrays; they are kept as JSON so that nothing a
// broker adds can break decoding.
func headerString(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case []byte:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x), true
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case time.Time:
		return FormatTimestamp(x), true
	case amqp091.Decimal:
		return fmt.Sprintf("%de-%d", x.Value, x.Scale), true
	}
	b, err := json.Marshal(jsonable(v), encodeOptions)
	if err != nil {
		return "", false
	}
	return string(b), true
}

func jsonable(v any) any {
	switch x := v.(type) {
	case amqp091.Table:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = jsonable(e)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case []byte:
		return string(x)
	case time.Time:
		return FormatTimestamp(x)
	}
	return v
}

type originalBodyKey struct{}

// WithOriginalBody returns a context that carries the body a message
// arrived with; the transports set it on every delivery.
func WithOriginalBody(ctx context.Context, body []byte) context.Context {
	return context.WithValue(ctx, originalBodyKey{}, body)
}

// OriginalBody returns the body a message arrived with, byte for byte, or
// nil when it did not come from a broker. Parking a message uses it so that
// the poison queue holds exactly what the producer sent.
func OriginalBody(msg *message.Message) []byte {
	b, _ := msg.Context().Value(originalBodyKey{}).([]byte)
	return b
}
