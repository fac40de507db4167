package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/topic"
	"github.com/33god/bloodbank-go/bus/transport"
)

// Broker is the in-process broker the package doc describes. Watermill's
// GoChannel cannot stand in for it: it has no wildcard routing and hands
// every message to every subscriber.
type Broker struct {
	mu     sync.RWMutex
	queues map[string]*embQueue
	logger *slog.Logger
	closed atomic.Bool
}

// New returns an empty in-process broker. A nil logger logs nothing.
func New(logger *slog.Logger) *Broker {
	return &Broker{queues: map[string]*embQueue{}, logger: orNop(logger)}
}

// Close stops the broker: publishes and new subscriptions fail with transport.ErrClosed.
func (e *Broker) Close() error {
	e.closed.Store(true)
	return nil
}

// Closed reports whether Close was called.
func (e *Broker) Closed() bool { return e.closed.Load() }

// DeclareQueue creates a queue if it does not exist and binds it to each
// pattern (idempotent, as on RabbitMQ).
func (e *Broker) DeclareQueue(name string, patterns ...string) error {
	compiled := make([]topic.Pattern, 0, len(patterns))
	for _, p := range patterns {
		c, err := topic.Compile(p)
		if err != nil {
			return err
		}
		compiled = append(compiled, c)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	q, ok := e.queues[name]
	if !ok {
		q = &embQueue{name: name, signal: make(chan struct{})}
		e.queues[name] = q
	}
	for _, c := range compiled {
		if !slices.ContainsFunc(q.bindings, func(b topic.Pattern) bool { return b.String() == c.String() }) {
			q.bindings = append(q.bindings, c)
		}
	}
	return nil
}

// QueueLength returns the number of ready (not in-flight) messages in a queue.
func (e *Broker) QueueLength(name string) int {
	q := e.queue(name)
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// route puts a copy of msg into every queue bound to key, or through the
// default exchange (toQueue) into the queue named key, and returns how many
// queues took it.
func (e *Broker) route(key string, msg *message.Message, body []byte, toQueue bool) int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := 0
	for _, q := range e.queues {
		if toQueue && q.name == key || !toQueue && slices.ContainsFunc(q.bindings, func(b topic.Pattern) bool { return b.Match(key) }) {
			e.deliver(q, embItem{msg: msg.Copy(), routingKey: key, body: body})
			n++
		}
	}
	return n
}

// deliver queues an item, or for a delay queue, moves it to the queue it
// dead-letters to once its delay has passed, as a RabbitMQ queue with a
// message TTL and a dead-letter routing key does.
func (e *Broker) deliver(q *embQueue, it embItem) {
	if q.delay <= 0 {
		q.push(it, false)
		return
	}
	time.AfterFunc(q.delay, func() {
		if e.closed.Load() {
			return
		}
		e.route(q.deadLetterTo, it.msg, it.body, true)
	})
}

// DeclareDelayQueue declares a queue that holds each message for delay,
// then moves it to the queue deadLetterTo.
func (e *Broker) DeclareDelayQueue(name string, delay time.Duration, deadLetterTo string) error {
	if delay <= 0 {
		return fmt.Errorf("cannot declare delay queue %q: delay must be positive", name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if q, ok := e.queues[name]; ok {
		if q.delay != delay || q.deadLetterTo != deadLetterTo {
			return fmt.Errorf("cannot declare delay queue %q: it exists with other arguments (PRECONDITION_FAILED)", name)
		}
		return nil
	}
	e.queues[name] = &embQueue{name: name, signal: make(chan struct{}), delay: delay, deadLetterTo: deadLetterTo}
	return nil
}

func (e *Broker) queue(name string) *embQueue {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.queues[name]
}

type embItem struct {
	msg        *message.Message
	routingKey string
	body       []byte
}

type embQueue struct {
	name     string
	bindings []topic.Pattern

	delay        time.Duration // a delay queue holds nothing consumable
	deadLetterTo string

	mu     sync.Mutex
	items  []embItem
	signal chan struct{} // closed and replaced whenever an item is added
}

// push adds an item; a requeued item goes to the front, as close to its
// original position as RabbitMQ puts it.
func (q *embQueue) push(it embItem, front bool) {
	q.mu.Lock()
	if front {
		q.items = append([]embItem{it}, q.items...)
	} else {
		q.items = append(q.items, it)
	}
	close(q.signal)
	q.signal = make(chan struct{})
	q.mu.Unlock()
}

func (q *embQueue) pop(stop <-chan struct{}) (embItem, bool) {
	for {
		select {
		case <-stop:
			return embItem{}, false
		default:
		}
		q.mu.Lock()
		if len(q.items) > 0 {
			it := q.items[0]
			q.items[0] = embItem{}
			q.items = q.items[1:]
			q.mu.Unlock()
			return it, true
		}
		signal := q.signal
		q.mu.Unlock()
		select {
		case <-signal:
		case <-stop:
			return embItem{}, false
		}
	}
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Marshaler, when set, runs every message through Marshal and Unmarshal,
	// so that subscribers receive what they would from RabbitMQ. Optional;
	// bus.Open sets envelope.Codec{}.
	Marshaler wamqp.Marshaler
	// UnroutableIsError makes Publish return transport.ErrUnroutable for a message that
	// no queue is bound to. Optional; by default it is logged and counted.
	UnroutableIsError bool
	// ToQueues publishes through the default exchange: the topic is the
	// name of the queue the message goes to, which must exist.
	ToQueues bool
	// Logger. Optional; default logs nothing.
	Logger *slog.Logger
}

// Publisher publishes to a Broker. The Watermill topic is the routing key.
type Publisher struct {
	broker *Broker
	cfg    PublisherConfig
	logger *slog.Logger

	published, unroutable, failed atomic.Int64
}

// Stats counts what the publisher did, as amqp.Publisher.Stats does; a
// queued message counts as confirmed.
func (p *Publisher) Stats() transport.PublisherStats {
	pub, unr, failed := p.published.Load(), p.unroutable.Load(), p.failed.Load()
	return transport.PublisherStats{Published: pub, Confirmed: pub - failed, Unroutable: unr, Failed: failed}
}

// Publisher returns a publisher on the broker.
func (e *Broker) Publisher(cfg PublisherConfig) *Publisher {
	return &Publisher{broker: e, cfg: cfg, logger: orNop(cfg.Logger)}
}

// Publish routes each message to the queues bound to topic. It returns once
// every message is queued, the embedded equivalent of a broker confirm.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if p.broker.closed.Load() {
		return transport.ErrClosed
	}
	for _, msg := range msgs {
		p.published.Add(1)
		out := msg
		var body []byte
		if p.cfg.Marshaler != nil {
			pub, err := p.cfg.Marshaler.Marshal(msg)
			if err == nil {
				out, err = p.cfg.Marshaler.Unmarshal(amqp091.Delivery{Body: pub.Body, MessageId: pub.MessageId,
					Headers: pub.Headers, RoutingKey: topic, ContentType: pub.ContentType, DeliveryMode: pub.DeliveryMode})
			}
			if err != nil {
				p.failed.Add(1)
				return err
			}
			body = pub.Body
		}
		if p.broker.route(topic, out, body, p.cfg.ToQueues) == 0 {
			p.unroutable.Add(1)
			if p.cfg.UnroutableIsError {
				return fmt.Errorf("cannot publish %s to %q: %w", msg.UUID, topic, transport.ErrUnroutable)
			}
			p.logger.Warn("unroutable: no queue is bound to the routing key; message dropped by the broker",
				slog.String("routing_key", topic), slog.String("event_id", msg.UUID))
		}
	}
	return nil
}

// Close is a no-op: the publisher holds nothing.
func (p *Publisher) Close() error { return nil }

// Subscriber consumes from a Broker. Subscribe(topic) binds the topic, a
// pattern, to the topic's queue (transport.SubscriberConfig.QueueName) and
// returns the messages of that queue whose routing key matches it.
type Subscriber struct {
	*transport.Subscriber
	broker *Broker
}

// Subscriber returns a subscriber on the broker.
func (e *Broker) Subscriber(cfg transport.SubscriberConfig) *Subscriber {
	s := &Subscriber{broker: e}
	s.Subscriber = transport.NewSubscriber(cfg, s.declare, func(queue string, stop <-chan struct{}) (transport.Source, error) {
		q := e.queue(queue)
		if q == nil {
			return nil, fmt.Errorf("queue %q was deleted", queue)
		}
		return &embSource{q: q, stop: stop}, nil
	})
	return s
}

func (s *Subscriber) declare(_ context.Context, queue, pattern string) error {
	if s.broker.closed.Load() {
		return transport.ErrClosed
	}
	return s.broker.DeclareQueue(queue, pattern)
}

// SubscribeInitialize declares the topic's queue and binding without
// consuming, so messages published before Subscribe are kept.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	return s.declare(context.Background(), s.Config().QueueName(topic), topic)
}

type embSource struct {
	q    *embQueue
	stop <-chan struct{}
}

func (s *embSource) Fetch() (transport.Delivery, bool) {
	it, ok := s.q.pop(s.stop)
	if !ok {
		return transport.Delivery{}, false
	}
	var settled atomic.Bool
	return transport.Delivery{
		Msg:        it.msg,
		Body:       it.body,
		RoutingKey: it.routingKey,
		Ack:        func() { settled.Store(true) },
		Nack: func() {
			if settled.CompareAndSwap(false, true) {
				// A fresh message, as RabbitMQ redelivers a fresh delivery:
				// the old one has been acked or nacked already.
				s.q.push(embItem{msg: it.msg.Copy(), routingKey: it.routingKey, body: it.body}, true)
			}
		},
	}, true
}

func (s *embSource) Close() {}

var (
	_ message.Publisher            = (*Publisher)(nil)
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// orNop returns l, or a logger that discards everything.
func orNop(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
