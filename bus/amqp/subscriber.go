package amqp

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	transport.SubscriberConfig
	// Topology: exchange, queue type, temporary queues. Optional.
	Topology Topology
	// Marshaler reads deliveries into messages. Optional; default envelope.Codec{}.
	Marshaler wamqp.Marshaler
}

// Subscriber consumes Bloodbank queues as the package doc says.
// Subscribe(topic) declares the topic's queue (SubscriberConfig.QueueName),
// binds it to the topic as a pattern, and returns the messages of that
// queue whose routing key matches. Close leaves the connection open.
type Subscriber struct {
	*transport.Subscriber
	conn     *Connection
	cfg      SubscriberConfig
	bindings bindings
}

// NewSubscriber returns a subscriber on conn.
func NewSubscriber(conn *Connection, cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.Marshaler == nil {
		cfg.Marshaler = envelope.Codec{}
	}
	if err := cfg.Topology.Validate(); err != nil {
		return nil, err
	}
	s := &Subscriber{conn: conn, cfg: cfg}
	s.Subscriber = transport.NewSubscriber(cfg.SubscriberConfig, s.declare, s.newSource)
	s.cfg.SubscriberConfig = s.Config()
	return s, nil
}

// declare declares the queue with every pattern bound so far, waiting for
// a reconnect at most until ctx ends or 30s pass.
func (s *Subscriber) declare(ctx context.Context, queue, pattern string) error {
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

// SubscribeInitialize declares the queue and binding without consuming.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	return s.declare(context.Background(), s.cfg.QueueName(topic), topic)
}

func (s *Subscriber) newSource(queue string, stop <-chan struct{}) (transport.Source, error) {
	src := &amqpSource{s: s, queue: queue, stop: stop, done: make(chan struct{})}
	src.gen.Store(&consumeGen{replaced: make(chan struct{})})
	go src.run()
	return src, nil
}

// amqpSource consumes one queue on one channel, and opens a new channel
// (declaring the topology again) whenever the old one dies. The workers
// read the channel's deliveries themselves, so a delivery reaches its
// handler with no hand-off of ours and is decoded in parallel.
type amqpSource struct {
	s     *Subscriber
	queue string
	gen   atomic.Pointer[consumeGen]
	stop  <-chan struct{}
	done  chan struct{} // closed when run returns
}

// consumeGen is one channel's consumer. Its deliveries end when the
// channel dies; replaced is closed when the next one takes over, which
// wakes the workers waiting for it.
type consumeGen struct {
	ch         *amqp091.Channel
	tag        string
	deliveries <-chan amqp091.Delivery
	acks       *acker
	replaced   chan struct{}
}

func (src *amqpSource) Fetch() (transport.Delivery, bool) {
	g := src.gen.Load()
	deliveries := g.deliveries
	for {
		select {
		case d, ok := <-deliveries:
			if ok {
				return src.delivery(g, d), true
			}
			deliveries = nil // the channel died: wait for run to open the next one
		case <-g.replaced:
			g = src.gen.Load() // run swaps in the next generation before closing replaced
			deliveries = g.deliveries
		case <-src.stop:
			return transport.Delivery{}, false
		}
	}
}

func (src *amqpSource) delivery(g *consumeGen, d amqp091.Delivery) transport.Delivery {
	msg, err := src.s.cfg.Marshaler.Unmarshal(d)
	if err != nil {
		// Only a custom Marshaler can fail here; Codec never does.
		msg = message.NewMessage(d.MessageId, d.Body)
		msg.Metadata[envelope.MetaMalformed] = err.Error()
	}
	// An ack or nack fails only when the channel is gone; the broker then
	// requeues the delivery by itself. The closures capture the tag alone:
	// capturing d would move the whole delivery struct to the heap.
	tag := d.DeliveryTag
	return transport.Delivery{
		Msg:        msg,
		Body:       d.Body,
		RoutingKey: d.RoutingKey,
		Ack:        func() { g.acks.ack(tag) },
		Nack:       func() { g.acks.nack(tag) },
	}
}

func (src *amqpSource) run() {
	defer close(src.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-src.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	logger := src.s.cfg.Logger.With(slog.String("queue", src.queue))
	for attempt := 0; ; attempt++ {
		g, ended, err := src.consume(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
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
		old := src.gen.Swap(g)
		close(old.replaced)
		if old.ch != nil {
			_ = old.ch.Close()
		}
		select {
		case <-src.stop:
			// The broker sends no more; what was prefetched and not handed
			// out is requeued when Close closes the channel, after the drain.
			_ = g.ch.Cancel(g.tag, false)
			return
		case <-ended:
		}
		logger.Warn("consumer channel closed, resubscribing")
	}
}

// consume opens a channel, declares the topology and starts consuming.
// ended fires when the channel closes or the queue was deleted.
func (src *amqpSource) consume(ctx context.Context) (g *consumeGen, ended <-chan struct{}, err error) {
	ch, err := src.s.conn.Channel(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = ch.Close()
		}
	}()
	cfg := src.s.cfg
	if err = cfg.Topology.DeclareQueue(ch, src.queue, src.s.bindings.of(src.queue)...); err != nil {
		return nil, nil, err
	}
	if err = ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return nil, nil, fmt.Errorf("cannot set prefetch %d: %w", cfg.Prefetch, err)
	}
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	cancelled := ch.NotifyCancel(make(chan string, 1))
	tag := "bb-" + uuid.NewString()
	deliveries, err := ch.Consume(src.queue, tag, false, false, false, false, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot consume queue %q: %w", src.queue, err)
	}
	end := make(chan struct{})
	go func() {
		select {
		case <-closed:
		case <-cancelled:
		}
		close(end)
	}()
	return &consumeGen{ch: ch, tag: tag, deliveries: deliveries, acks: newAcker(ch, cfg.Prefetch), replaced: make(chan struct{})}, end, nil
}

// Close closes the channel once run has stopped; the transport calls it
// after stop closed and the drain ended.
func (src *amqpSource) Close() {
	<-src.done
	if g := src.gen.Load(); g.ch != nil {
		_ = g.ch.Close()
	}
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)
