package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
)

// Transport names.
const (
	TransportAMQP     = "amqp"
	TransportEmbedded = "embedded"
)

// Bus is a process's connection to Bloodbank: a confirmed publisher and the
// means to build services. Publishing and consuming use separate AMQP
// connections, as RabbitMQ recommends, so that flow control on a busy
// publisher never stalls consumers.
type Bus struct {
	cfg    Config
	logger *slog.Logger

	pubConn, subConn *amqp.Connection
	embedded         *embedded.Broker
	embPub           *embedded.Publisher
	amqpPub          *amqp.Publisher
	publisher        message.Publisher
	queuePub         message.Publisher
}

// Open connects the bus as cfg says. On RabbitMQ it waits up to
// BB_CONNECT_TIMEOUT for the broker, logging why it waits.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Embedded() {
		return NewEmbeddedBus(cfg, embedded.New(logger), logger), nil
	}
	b := &Bus{cfg: cfg, logger: orNop(logger)}
	topo := b.topology()
	var err error
	conn := amqp.ConnectionConfig{URL: cfg.RabbitURL, ConnectTimeout: cfg.ConnectTimeout, Logger: b.logger}
	conn.Name = cfg.ServiceName + " publisher"
	if b.pubConn, err = amqp.Dial(ctx, conn); err == nil {
		conn.Name = cfg.ServiceName + " consumer"
		b.subConn, err = amqp.Dial(ctx, conn)
	}
	pub := amqp.PublisherConfig{Topology: topo, Channels: cfg.PublisherChannels, ConfirmTimeout: cfg.PublishTimeout,
		Logger: b.logger, UnroutableIsError: cfg.UnroutableIsError}
	if err == nil {
		b.amqpPub, err = amqp.NewPublisher(b.pubConn, pub)
	}
	if err == nil {
		b.publisher = b.amqpPub
		pub.Channels, pub.ToQueues, pub.UnroutableIsError = 1, true, true
		b.queuePub, err = amqp.NewPublisher(b.pubConn, pub)
	}
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// NewEmbeddedBus is Open on the given in-process broker, for tests that run
// several buses (services) against one broker.
func NewEmbeddedBus(cfg Config, broker *embedded.Broker, logger *slog.Logger) *Bus {
	b := &Bus{cfg: cfg, logger: orNop(logger), embedded: broker}
	b.embPub = broker.Publisher(embedded.PublisherConfig{Marshaler: envelope.Codec{}, Logger: b.logger, UnroutableIsError: cfg.UnroutableIsError})
	b.publisher = b.embPub
	b.queuePub = broker.Publisher(embedded.PublisherConfig{Marshaler: envelope.Codec{}, Logger: b.logger, ToQueues: true, UnroutableIsError: true})
	return b
}

func (b *Bus) topology() amqp.Topology {
	return amqp.Topology{Exchange: b.cfg.ExchangeName, QueueType: b.cfg.QueueType}
}

// Config returns the settings the bus was opened with.
func (b *Bus) Config() Config { return b.cfg }

// Logger returns the bus's logger.
func (b *Bus) Logger() *slog.Logger { return b.logger }

// Transport says which transport the bus runs on: TransportAMQP or TransportEmbedded.
func (b *Bus) Transport() string {
	if b.embedded != nil {
		return TransportEmbedded
	}
	return TransportAMQP
}

// EmbeddedBroker returns the in-process broker, or nil on RabbitMQ.
func (b *Bus) EmbeddedBroker() *embedded.Broker { return b.embedded }

// Publisher returns the bus's Watermill publisher (the routing key is the
// topic), with the decorators added by DecoratePublisher.
func (b *Bus) Publisher() message.Publisher { return b.publisher }

// DecoratePublisher wraps the bus's publisher, for example to record
// correlation links. Call it before publishing or running services.
func (b *Bus) DecoratePublisher(decorate func(message.Publisher) message.Publisher) {
	b.publisher = decorate(b.publisher)
}

// Publish publishes envelopes under their event types and returns once the
// broker has confirmed every one. An envelope with no correlation ids is
// linked to the event ctx's handler handles (envelope.WithCause), and gets
// the child's depth and root (envelope.WithLineage). A child deeper than
// BB_MAX_DEPTH is not published: its error is a permanent
// *envelope.RunawayError matching envelope.ErrDepthExceeded, so the handler
// that would continue a runaway chain learns it at once.
func (b *Bus) Publish(ctx context.Context, envs ...envelope.Envelope) error {
	var errs []error
	for _, env := range envs {
		if len(env.CorrelationIDs) == 0 {
			if cause, ok := envelope.CauseFromContext(ctx); ok {
				env.CorrelationIDs = []uuid.UUID{cause}
			}
		}
		msg, err := envelope.NewMessage(env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l, ok := envelope.StampChild(ctx, msg); ok {
			if err := envelope.CheckDepth(l, b.cfg.MaxDepth, msg.UUID); err != nil {
				errs = append(errs, fmt.Errorf("cannot publish %s %s: %w", env.EventType, env.EventID, err))
				continue
			}
		}
		msg.SetContext(ctx)
		if err := b.publisher.Publish(env.EventType, msg); err != nil {
			errs = append(errs, fmt.Errorf("cannot publish %s %s: %w", env.EventType, env.EventID, err))
		}
	}
	return errors.Join(errs...)
}

// QueuePublisher returns a confirmed publisher whose topic is a queue name
// (the default exchange), for poison and delay queues. Publishing to a
// queue that does not exist fails with transport.ErrUnroutable.
func (b *Bus) QueuePublisher() message.Publisher { return b.queuePub }

// DeclareQueue declares a durable queue with no bindings, such as a poison queue.
func (b *Bus) DeclareQueue(ctx context.Context, name string) error {
	if b.embedded != nil {
		return b.embedded.DeclareQueue(name)
	}
	return b.withChannel(ctx, func(ch *amqp091.Channel) error { return b.topology().DeclareParkingQueue(ch, name) })
}

// DeclareDelayQueue declares a queue that holds each message for delay and
// then moves it to the queue deadLetterTo (see amqp.Topology.DeclareDelayQueue).
func (b *Bus) DeclareDelayQueue(ctx context.Context, name string, delay time.Duration, deadLetterTo string) error {
	if b.embedded != nil {
		return b.embedded.DeclareDelayQueue(name, delay, deadLetterTo)
	}
	return b.withChannel(ctx, func(ch *amqp091.Channel) error { return b.topology().DeclareDelayQueue(ch, name, delay, deadLetterTo) })
}

// WithChannel runs fn on a fresh AMQP channel of the consumer connection,
// for operations the bus has no method for (inspecting or purging a queue).
// It fails on the embedded transport.
func (b *Bus) WithChannel(ctx context.Context, fn func(ch *amqp091.Channel) error) error {
	if b.embedded != nil {
		return errors.New("no AMQP channel: the bus runs on the embedded transport")
	}
	return b.withChannel(ctx, fn)
}

func (b *Bus) withChannel(ctx context.Context, fn func(ch *amqp091.Channel) error) error {
	ch, err := b.subConn.Channel(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	return fn(ch)
}

// Subscriber returns a subscriber for a service's queue.
func (b *Bus) Subscriber(cfg transport.SubscriberConfig) (message.Subscriber, error) {
	return b.subscriber(cfg, false)
}

// TemporarySubscriber returns a subscriber whose queues are exclusive and
// deleted when it disconnects, for watching the bus without leaving state.
func (b *Bus) TemporarySubscriber(cfg transport.SubscriberConfig) (message.Subscriber, error) {
	return b.subscriber(cfg, true)
}

func (b *Bus) subscriber(cfg transport.SubscriberConfig, temporary bool) (message.Subscriber, error) {
	if cfg.Logger == nil {
		cfg.Logger = b.logger
	}
	if b.embedded != nil {
		return b.embedded.Subscriber(cfg), nil
	}
	topo := b.topology()
	if temporary {
		topo.Temporary, topo.QueueType = true, amqp.QueueClassic
	}
	return amqp.NewSubscriber(b.subConn, amqp.SubscriberConfig{SubscriberConfig: cfg, Topology: topo})
}

// Ready reports whether the broker is reachable now.
func (b *Bus) Ready() error {
	if b.embedded != nil {
		if b.embedded.Closed() {
			return fmt.Errorf("embedded broker: %w", transport.ErrClosed)
		}
		return nil
	}
	if !b.pubConn.Connected() || !b.subConn.Connected() {
		return errors.New("RabbitMQ is not connected")
	}
	return nil
}

// PublisherStats returns the publisher's counters.
func (b *Bus) PublisherStats() transport.PublisherStats {
	if b.embPub != nil {
		return b.embPub.Stats()
	}
	return b.amqpPub.Stats()
}

// Close closes the publisher and the connections. Close services first.
func (b *Bus) Close() error {
	var errs []error
	if b.publisher != nil {
		errs = append(errs, b.publisher.Close())
	}
	if b.queuePub != nil {
		errs = append(errs, b.queuePub.Close())
	}
	if b.subConn != nil {
		errs = append(errs, b.subConn.Close())
	}
	if b.pubConn != nil {
		errs = append(errs, b.pubConn.Close())
	}
	return errors.Join(errs...)
}
