package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQPSubscriberConfig configures an AMQPSubscriber.
type AMQPSubscriberConfig struct {
	SubscriberConfig
	// Topology: exchange, queue type, temporary queues. Optional.
	Topology Topology
	// Marshaler reads deliveries into messages. Optional; default Codec{}.
	Marshaler wamqp.Marshaler
}

// AMQPSubscriber consumes Bloodbank queues. Subscribe(topic) declares the
// topic's queue (SubscriberConfig.QueueName), binds it to the topic as a
// pattern, and returns the messages of that queue whose routing key matches.
// A queue is consumed by Consumers workers on one channel with QoS
// Prefetch; every message is acked only after its handler acked it, and
// Close drains. After a broker restart it declares its topology again and
// resumes by itself.
type AMQPSubscriber struct {
	core     subscriberCore
	conn     *AMQPConnection
	cfg      AMQPSubscriberConfig
	bindings bindings
}

// NewAMQPSubscriber returns a subscriber on conn.
func NewAMQPSubscriber(conn *AMQPConnection, cfg AMQPSubscriberConfig) (*AMQPSubscriber, error) {
	cfg.setDefaults()
	if cfg.Marshaler == nil {
		cfg.Marshaler = Codec{}
	}
	if err := cfg.Topology.Validate(); err != nil {
		return nil, err
	}
	s := &AMQPSubscriber{conn: conn, cfg: cfg}
	s.core = subscriberCore{
		cfg:       cfg.SubscriberConfig,
		consumers: map[string]*queueConsumer{},
		declare:   s.declare,
		newSource: s.newSource,
	}
	return s, nil
}

// declare declares the queue with every pattern bound so far, waiting for
// a reconnect at most until ctx ends or 30s pass.
func (s *AMQPSubscriber) declare(ctx context.Context, queue, pattern string) error {
	patterns := s.bindings.add(queue, pattern)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ch, err := s.conn.Channel(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	return s.cfg.Topology.DeclareQueue(ch, queue, patterns...)
}

// Subscribe implements message.Subscriber.
func (s *AMQPSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return s.core.subscribe(ctx, topic)
}

// SubscribeInitialize declares the queue and binding without consuming.
func (s *AMQPSubscriber) SubscribeInitialize(topic string) error {
	return s.declare(context.Background(), s.cfg.QueueName(topic), topic)
}

// Close drains in-flight messages, then closes every channel it opened and
// every subscription channel. The connection stays open: it is the caller's.
func (s *AMQPSubscriber) Close() error {
	s.core.close()
	return nil
}

func (s *AMQPSubscriber) newSource(queue string) (source, error) {
	src := &amqpSource{s: s, queue: queue, out: make(chan delivery), stop: make(chan struct{}), done: make(chan struct{})}
	go src.run()
	return src, nil
}

// amqpSource consumes one queue on one channel, and opens a new channel
// (declaring the topology again) whenever the old one dies.
type amqpSource struct {
	s     *AMQPSubscriber
	queue string
	out   chan delivery

	stop     chan struct{}
	stopOnce sync.Once // links the workers' stop to this source's
	haltOnce sync.Once
	done     chan struct{}

	mu sync.Mutex
	ch *amqp.Channel
}

func (src *amqpSource) fetch(stop <-chan struct{}) (delivery, bool) {
	src.stopOnce.Do(func() {
		go func() {
			<-stop
			src.halt()
		}()
	})
	select {
	case d := <-src.out:
		return d, true
	case <-stop:
		return delivery{}, false
	case <-src.done:
		return delivery{}, false
	}
}

func (src *amqpSource) halt() { src.haltOnce.Do(func() { close(src.stop) }) }

func (src *amqpSource) run() {
	defer close(src.done)
	logger := src.s.cfg.Logger.With(slog.String("queue", src.queue))
	for attempt := 0; ; attempt++ {
		deliveries, tag, err := src.consume()
		if err != nil {
			select {
			case <-src.stop:
				return
			default:
			}
			wait := backoffDelay(attempt, 100*time.Millisecond, 5*time.Second)
			logger.Warn("cannot consume, retrying", slog.String("error", err.Error()), slog.Duration("retry_in", wait))
			select {
			case <-src.stop:
				return
			case <-time.After(wait):
			}
			continue
		}
		if attempt > 0 {
			logger.Info("consuming again")
		}
		attempt = 0
		if stopped := src.forward(deliveries, tag); stopped {
			return
		}
		logger.Warn("consumer channel closed, resubscribing")
	}
}

// consume opens a channel, declares the topology and starts consuming.
func (src *amqpSource) consume() (<-chan amqp.Delivery, string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-src.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	ch, err := src.s.conn.Channel(ctx)
	if err != nil {
		return nil, "", err
	}
	cfg := src.s.cfg
	if err := cfg.Topology.DeclareQueue(ch, src.queue, src.s.bindings.of(src.queue)...); err != nil {
		_ = ch.Close()
		return nil, "", err
	}
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, "", fmt.Errorf("cannot set prefetch %d: %w", cfg.Prefetch, err)
	}
	tag := "bb-" + uuid.NewString()
	deliveries, err := ch.Consume(src.queue, tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, "", fmt.Errorf("cannot consume queue %q: %w", src.queue, err)
	}
	src.mu.Lock()
	old := src.ch
	src.ch = ch
	src.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return deliveries, tag, nil
}

// forward hands deliveries to the workers until the channel dies (false)
// or the source is stopped (true).
func (src *amqpSource) forward(deliveries <-chan amqp.Delivery, tag string) bool {
	marshaler := src.s.cfg.Marshaler
	for {
		select {
		case <-src.stop:
			src.cancel(tag)
			return true
		case d, ok := <-deliveries:
			if !ok {
				return false
			}
			msg, err := marshaler.Unmarshal(d)
			if err != nil {
				// Only a custom Marshaler can fail here; Codec never does.
				msg = message.NewMessage(d.MessageId, d.Body)
				msg.Metadata[MetaMalformed] = err.Error()
			}
			key := msg.Metadata.Get(MetaRoutingKey)
			if key == "" {
				key = d.RoutingKey
			}
			dv := delivery{
				msg:        msg,
				body:       d.Body,
				routingKey: key,
				ack:        func() { _ = d.Ack(false) },
				nack:       func() { _ = d.Nack(false, true) },
			}
			select {
			case src.out <- dv:
			case <-src.stop:
				dv.nack()
				src.cancel(tag)
				return true
			}
		}
	}
}

// cancel stops the broker sending more; what was prefetched and not handed
// out is requeued when the channel closes.
func (src *amqpSource) cancel(tag string) {
	src.mu.Lock()
	ch := src.ch
	src.mu.Unlock()
	if ch != nil {
		_ = ch.Cancel(tag, false)
	}
}

func (src *amqpSource) close() {
	src.halt()
	<-src.done
	src.mu.Lock()
	ch := src.ch
	src.ch = nil
	src.mu.Unlock()
	if ch != nil {
		_ = ch.Close()
	}
}

var (
	_ message.Subscriber           = (*AMQPSubscriber)(nil)
	_ message.SubscribeInitializer = (*AMQPSubscriber)(nil)
)
