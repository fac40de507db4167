package reliability

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/topic"
	"github.com/33god/bloodbank-go/middleware"
)

// ErrPoisonQueueEmbedded is returned by every PoisonQueue method on the
// embedded transport: its queues live inside the service's process, where
// no other process (such as `bb dlq`) can read them.
var ErrPoisonQueueEmbedded = errors.New("poison queues can only be inspected on RabbitMQ (the embedded transport keeps them inside the service's process)")

// ErrNoPoisonQueue is returned when the service has no poison queue: it
// never ran with middleware.Poison, or the service name is wrong.
var ErrNoPoisonQueue = errors.New("no poison queue")

// ErrNotParked is returned by PoisonQueue.Show for an event id not parked.
var ErrNotParked = errors.New("no parked message with this event id")

// PoisonQueueName names the poison queue of a service queue:
// "{serviceQueue}.poison". The name is part of the contract: `bb dlq` reads
// it, and renaming it strands what was parked.
func PoisonQueueName(serviceQueue string) string { return serviceQueue + amqp.PoisonQueueSuffix }

// QueueDeclarer declares a durable queue with no bindings, as *bus.Bus does.
type QueueDeclarer interface {
	DeclareQueue(ctx context.Context, name string) error
}

// DeclarePoisonQueue declares the poison queue of a service queue and returns its name.
func DeclarePoisonQueue(ctx context.Context, b QueueDeclarer, serviceQueue string) (string, error) {
	name := PoisonQueueName(serviceQueue)
	if err := b.DeclareQueue(ctx, name); err != nil {
		return "", fmt.Errorf("cannot declare poison queue %q: %w", name, err)
	}
	return name, nil
}

// ParkedMessage is one message in a poison queue, as middleware.Poison
// parked it. Its fields read the middleware.HeaderPoison* headers.
type ParkedMessage struct {
	EventID                   string            // the AMQP message_id, the envelope's event_id
	Body                      []byte            // the body the message arrived with, byte for byte
	Reason, Kind              string            // the error that got it parked, and its kind
	RoutingKey                string            // the routing key it was published with
	Handler, Service          string            // the handler that failed, the service that parked it
	Attempts                  int               // how many times the handler ran on it
	FirstFailure, LastFailure time.Time         // zero when absent
	Headers                   map[string]string // every header as text (tables as JSON)
}

// PoisonFilter selects parked messages. The zero value selects all of them;
// each field set narrows the selection.
type PoisonFilter struct {
	EventIDs     []string
	RoutingKey   string    // a topic pattern ("*" one word, "#" any words)
	Kind         string    // the failure kind (middleware.HeaderPoisonKind)
	Handler      string    // the handler that failed
	Since, Until time.Time // bound the last failure time: Since <= t < Until
	Limit        int       // stop after this many matches; 0: no limit
}

// IsZero reports whether the filter selects every parked message.
func (f PoisonFilter) IsZero() bool {
	return len(f.EventIDs) == 0 && f.RoutingKey == "" && f.Kind == "" && f.Handler == "" &&
		f.Since.IsZero() && f.Until.IsZero() && f.Limit == 0
}

// Validate reports every problem of the filter at once.
func (f PoisonFilter) Validate() error {
	var errs []error
	if f.RoutingKey != "" {
		if _, err := topic.Compile(f.RoutingKey); err != nil {
			errs = append(errs, fmt.Errorf("routing key pattern: %w", err))
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		errs = append(errs, fmt.Errorf("time range %s to %s is empty", envelope.FormatTimestamp(f.Since), envelope.FormatTimestamp(f.Until)))
	}
	if f.Limit < 0 {
		errs = append(errs, fmt.Errorf("limit %d is negative", f.Limit))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid poison filter: %w", err)
	}
	return nil
}

// Match reports whether the filter selects m (Limit aside).
func (f PoisonFilter) Match(m ParkedMessage) bool {
	return (len(f.EventIDs) == 0 || slices.Contains(f.EventIDs, m.EventID)) &&
		(f.RoutingKey == "" || topic.Match(f.RoutingKey, m.RoutingKey)) &&
		(f.Kind == "" || f.Kind == m.Kind) &&
		(f.Handler == "" || f.Handler == m.Handler) &&
		(f.Since.IsZero() || !m.LastFailure.Before(f.Since)) &&
		(f.Until.IsZero() || m.LastFailure.Before(f.Until))
}

// PoisonQueue reads and re-drives the poison queue of one service on
// RabbitMQ, for `bb dlq`. Reading fetches messages without an ack and
// requeues them all, so a List changes nothing. Run one operation at a time
// per queue: another reader's unacked messages are not seen.
type PoisonQueue struct {
	bus          *bus.Bus
	service      string
	serviceQueue string
	queue        string
}

// NewPoisonQueue returns the poison queue of a service on b; an empty
// service is the bus's SERVICE_NAME.
func NewPoisonQueue(b *bus.Bus, service string) *PoisonQueue {
	if service == "" {
		service = b.Config().ServiceName
	}
	sq := bus.ServiceQueueName(b.Config().ExchangeName, service)
	return &PoisonQueue{bus: b, service: service, serviceQueue: sq, queue: PoisonQueueName(sq)}
}

// Name is the poison queue's name.
func (q *PoisonQueue) Name() string { return q.queue }

// ServiceQueue is the queue Replay sends messages back to.
func (q *PoisonQueue) ServiceQueue() string { return q.serviceQueue }

// Count returns how many messages are parked (ready in the queue).
func (q *PoisonQueue) Count(ctx context.Context) (int, error) {
	var n int
	err := q.withChannel(ctx, func(ch *amqp091.Channel) error {
		info, err := ch.QueueDeclarePassive(q.queue, true, false, false, false, nil)
		n = info.Messages
		return q.queueError(err)
	})
	return n, err
}

// List returns the parked messages f selects, oldest first, and leaves
// them all in the queue.
func (q *PoisonQueue) List(ctx context.Context, f PoisonFilter) ([]ParkedMessage, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var out []ParkedMessage
	err := q.scan(ctx, func(m ParkedMessage) (bool, bool, error) {
		if f.Match(m) {
			out = append(out, m)
		}
		return false, f.Limit > 0 && len(out) >= f.Limit, nil
	})
	return out, err
}

// Show returns the parked message with the event id, or an error wrapping
// ErrNotParked. It leaves the queue as it was.
func (q *PoisonQueue) Show(ctx context.Context, eventID string) (ParkedMessage, error) {
	ms, err := q.List(ctx, PoisonFilter{EventIDs: []string{eventID}, Limit: 1})
	if err != nil {
		return ParkedMessage{}, err
	}
	if len(ms) == 0 {
		return ParkedMessage{}, fmt.Errorf("%w: %s in %q", ErrNotParked, eventID, q.queue)
	}
	return ms[0], nil
}

// Replay sends the parked messages f selects back to the service queue, to
// the handler that failed (every handler when none is known), under the
// original routing key, with the same event id and body and no attempts. A
// message parked as envelope.KindRunaway goes back with a fresh budget: its
// depth and root are cleared and envelope.MetaBudgetReset makes it a new
// root, so the chain it continues is re-driven on purpose. A
// parked copy is removed only once its replay is confirmed; Replay stops at
// an error and returns the messages replayed.
func (q *PoisonQueue) Replay(ctx context.Context, f PoisonFilter) ([]ParkedMessage, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	pub := q.bus.QueuePublisher()
	var done []ParkedMessage
	err := q.scan(ctx, func(m ParkedMessage) (bool, bool, error) {
		if !f.Match(m) {
			return false, false, nil
		}
		msg := replayMessage(m)
		msg.SetContext(ctx)
		if err := pub.Publish(q.serviceQueue, msg); err != nil {
			return false, true, fmt.Errorf("cannot replay %s to %q: %w", m.EventID, q.serviceQueue, err)
		}
		// Should the ack below fail, the copy stays parked though replayed:
		// a later replay runs it again, which middleware.Dedup absorbs.
		done = append(done, m)
		return true, f.Limit > 0 && len(done) >= f.Limit, nil
	})
	return done, err
}

// replayMessage is a parked message as it goes back to its service.
func replayMessage(m ParkedMessage) *message.Message {
	msg := message.NewMessage(m.EventID, slices.Clone(m.Body))
	for k, v := range m.Headers {
		if !middleware.InternalHeader(k) && !envelope.IsBodyKey(k) {
			msg.Metadata[k] = v
		}
	}
	msg.Metadata.Set(envelope.MetaRawBody, "true")
	if m.RoutingKey != "" {
		msg.Metadata.Set(envelope.MetaOriginalRoutingKey, m.RoutingKey)
	}
	if m.Handler != "" {
		msg.Metadata.Set(envelope.MetaTargetHandler, m.Handler)
	}
	if m.Kind == envelope.KindRunaway {
		// Re-driven on purpose: the event starts a chain of its own, with
		// a fresh budget, instead of being parked again at once.
		envelope.ClearLineage(msg)
		msg.Metadata.Set(envelope.MetaBudgetReset, "true")
	}
	return msg
}

// Purge removes the parked messages f selects (all of them for the zero
// filter) and returns how many it removed.
func (q *PoisonQueue) Purge(ctx context.Context, f PoisonFilter) (int, error) {
	if err := f.Validate(); err != nil {
		return 0, err
	}
	if f.IsZero() {
		var n int
		err := q.withChannel(ctx, func(ch *amqp091.Channel) (err error) {
			n, err = ch.QueuePurge(q.queue, false)
			return q.queueError(err)
		})
		return n, err
	}
	n := 0
	err := q.scan(ctx, func(m ParkedMessage) (bool, bool, error) {
		if !f.Match(m) {
			return false, false, nil
		}
		n++
		return true, f.Limit > 0 && n >= f.Limit, nil
	})
	return n, err
}

// scan fetches the queue's messages with basic.get, without acking, until
// it has seen as many as the queue held at the start (a replayed message
// parked anew meanwhile must not be replayed twice), fn says stop or fails,
// or ctx ends. It acks what fn removes and requeues the rest at the end.
func (q *PoisonQueue) scan(ctx context.Context, fn func(m ParkedMessage) (remove, stop bool, err error)) error {
	return q.withChannel(ctx, func(ch *amqp091.Channel) error {
		state, err := ch.QueueDeclarePassive(q.queue, true, false, false, false, nil)
		if err != nil {
			return q.queueError(err)
		}
		remaining := state.Messages
		var lastKept uint64
		defer func() {
			if lastKept > 0 {
				// Requeue every message still held. Closing the channel,
				// which the bus does next, would requeue them too.
				_ = ch.Nack(lastKept, true, true)
			}
		}()
		for ; remaining > 0; remaining-- {
			if err := ctx.Err(); err != nil {
				return err
			}
			d, ok, err := ch.Get(q.queue, false)
			if err != nil {
				return q.queueError(err)
			}
			if !ok {
				return nil
			}
			m := parkedFromDelivery(d)
			remove, stop, err := fn(m)
			if remove {
				if aerr := d.Ack(false); aerr != nil {
					return errors.Join(err, fmt.Errorf("cannot remove %s from %q: %w", m.EventID, q.queue, aerr))
				}
			} else {
				lastKept = d.DeliveryTag
			}
			if err != nil || stop {
				return err
			}
		}
		return nil
	})
}

func (q *PoisonQueue) withChannel(ctx context.Context, fn func(ch *amqp091.Channel) error) error {
	if q.bus.Transport() == bus.TransportEmbedded {
		return ErrPoisonQueueEmbedded
	}
	return q.bus.WithChannel(ctx, fn)
}

func (q *PoisonQueue) queueError(err error) error {
	if err == nil {
		return nil
	}
	if aerr, ok := errors.AsType[*amqp091.Error](err); ok && aerr.Code == amqp091.NotFound {
		return fmt.Errorf("%w %q for service %q: %w", ErrNoPoisonQueue, q.queue, q.service, err)
	}
	return fmt.Errorf("cannot read poison queue %q: %w", q.queue, err)
}

func parkedFromDelivery(d amqp091.Delivery) ParkedMessage {
	// The codec's header reading, so a parked message reads as a consumer's would.
	headers := map[string]string{}
	md := envelope.DecodeDelivery(nil, "", "", d.Headers).Metadata
	for k := range d.Headers {
		if v, ok := md[k]; ok {
			headers[k] = v
		}
	}
	m := ParkedMessage{
		EventID:    d.MessageId,
		Body:       d.Body,
		Reason:     headers[middleware.HeaderPoisonReason],
		Kind:       headers[middleware.HeaderPoisonKind],
		RoutingKey: headers[envelope.MetaOriginalRoutingKey],
		Handler:    headers[middleware.HeaderPoisonHandler],
		Service:    headers[middleware.HeaderPoisonService],
		Headers:    headers,
	}
	m.Attempts, _ = strconv.Atoi(headers[middleware.HeaderPoisonAttempts])
	m.FirstFailure, _ = envelope.ParseTimestamp(headers[middleware.HeaderPoisonFirstFailure])
	m.LastFailure, _ = envelope.ParseTimestamp(headers[middleware.HeaderPoisonLastFailure])
	return m
}
