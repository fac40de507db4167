package amqp

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Queue types a service queue can be declared with.
const (
	QueueClassic = "classic"
	QueueQuorum  = "quorum"
)

// QuorumDeliveryLimit is the x-delivery-limit of a quorum service queue: a
// message returned to the queue this many times (its consumer crashed or
// lost its connection while holding it, again and again) is dead-lettered
// to the poison queue instead of being delivered once more. It is a safety
// net behind middleware.Poison, which parks a failing message long before:
// retries go through the delay queues and do not count here.
const QuorumDeliveryLimit = 20

// PoisonQueueSuffix makes the name of a service queue's poison queue
// (reliability.PoisonQueueName), where a quorum service queue dead-letters
// what exceeded QuorumDeliveryLimit.
const PoisonQueueSuffix = ".poison"

// Topology declares the Bloodbank exchange and queues. Its declarations
// match the Python services' flag for flag (a durable topic exchange, not
// auto-deleted, not internal, no arguments; durable queues), because
// RabbitMQ refuses a redeclaration with different flags (406
// PRECONDITION_FAILED) and would break whichever side came second.
type Topology struct {
	// Exchange is the topic exchange. Optional; default envelope.DefaultExchange.
	Exchange string
	// QueueType is QueueClassic or QueueQuorum. Optional; default classic,
	// declared with no x-queue-type argument as the Python services do.
	QueueType string
	// Temporary declares queues exclusive and auto-deleted instead of
	// durable, for a tail that must leave nothing behind.
	Temporary bool
}

func (t Topology) exchange() string { return cmp.Or(t.Exchange, envelope.DefaultExchange) }

// Validate reports a queue type other than classic or quorum, or a
// temporary quorum queue.
func (t Topology) Validate() error {
	switch t.QueueType {
	case "", QueueClassic:
	case QueueQuorum:
		if t.Temporary {
			return fmt.Errorf("invalid topology: quorum queues cannot be temporary")
		}
	default:
		return fmt.Errorf("invalid queue type %q: want %q or %q", t.QueueType, QueueClassic, QueueQuorum)
	}
	return nil
}

// DeclareExchange declares the exchange.
func (t Topology) DeclareExchange(ch *amqp091.Channel) error {
	if err := ch.ExchangeDeclare(t.exchange(), amqp091.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("cannot declare exchange %q: %w", t.exchange(), err)
	}
	return nil
}

// DeclareQueue declares the exchange, the queue and one binding per pattern.
func (t Topology) DeclareQueue(ch *amqp091.Channel, queue string, patterns ...string) error {
	if err := t.DeclareExchange(ch); err != nil {
		return err
	}
	var args amqp091.Table
	if t.QueueType == QueueQuorum {
		args = quorumArgs(amqp091.Table{"x-delivery-limit": QuorumDeliveryLimit}, queue+PoisonQueueSuffix)
	}
	durable, autoDelete, exclusive := !t.Temporary, t.Temporary, t.Temporary
	if _, err := ch.QueueDeclare(queue, durable, autoDelete, exclusive, false, args); err != nil {
		return fmt.Errorf("cannot declare queue %q: %w", queue, err)
	}
	for _, p := range patterns {
		if err := ch.QueueBind(queue, p, t.exchange(), false, nil); err != nil {
			return fmt.Errorf("cannot bind queue %q to %q: %w", queue, p, err)
		}
	}
	return nil
}

// quorumArgs adds to args what makes a queue a quorum queue that
// dead-letters to the queue deadLetterTo, through the default exchange, at
// least once: the message leaves the source queue only once the target
// confirmed it, where the default (at most once) drops it if the target is
// missing or unreachable. At-least-once requires reject-publish overflow.
func quorumArgs(args amqp091.Table, deadLetterTo string) amqp091.Table {
	args["x-queue-type"] = QueueQuorum
	args["x-dead-letter-exchange"] = ""
	args["x-dead-letter-routing-key"] = deadLetterTo
	args["x-dead-letter-strategy"] = "at-least-once"
	args["x-overflow"] = "reject-publish"
	return args
}

// DeclareParkingQueue declares a durable queue with no bindings that keeps
// messages until someone takes them, such as a poison queue. Quorum or
// classic as the topology says; a quorum one has no delivery limit, since
// reading it (bb dlq show) returns messages to it.
func (t Topology) DeclareParkingQueue(ch *amqp091.Channel, name string) error {
	var args amqp091.Table
	if t.QueueType == QueueQuorum {
		args = amqp091.Table{"x-queue-type": QueueQuorum}
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		return fmt.Errorf("cannot declare queue %q: %w", name, err)
	}
	return nil
}

// DeclareDelayQueue declares a durable queue that holds each message for
// delay and then dead-letters it, through the default exchange, to the
// queue deadLetterTo: a retry waits without pinning a consumer and without
// the delayed-message plugin, which current RabbitMQ lacks. With quorum
// queues (RabbitMQ 3.10 or later: message TTL) it is a quorum queue too,
// and dead-letters at least once, so a retry survives the loss of a node.
func (t Topology) DeclareDelayQueue(ch *amqp091.Channel, name string, delay time.Duration, deadLetterTo string) error {
	if delay <= 0 {
		return fmt.Errorf("cannot declare delay queue %q: delay must be positive", name)
	}
	args := amqp091.Table{
		"x-message-ttl":             delay.Milliseconds(),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": deadLetterTo,
	}
	if t.QueueType == QueueQuorum {
		args = quorumArgs(args, deadLetterTo)
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		return fmt.Errorf("cannot declare delay queue %q: %w", name, err)
	}
	return nil
}

// bindings remembers every pattern bound per queue, so that the topology
// can be declared again, whole, after a broker restart.
type bindings struct {
	mu sync.Mutex
	m  map[string][]string
}

func (b *bindings) add(queue, pattern string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string][]string{}
	}
	if !slices.Contains(b.m[queue], pattern) {
		b.m[queue] = append(b.m[queue], pattern)
	}
	return slices.Clone(b.m[queue])
}

func (b *bindings) of(queue string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.m[queue])
}

// TopologyBuilder gives a plain watermill-amqp app the Bloodbank topology:
// the exchange declared with the Python services' flags and the queue bound
// once per pattern (watermill-amqp's DefaultTopologyBuilder binds a queue
// only to its own name). Use it on subscriber and publisher, with
// Topology.Exchange equal to the exchange name watermill-amqp generates:
//
//	sub, err := wamqp.NewSubscriber(wamqp.Config{
//		Connection: wamqp.ConnectionConfig{AmqpURI: url},
//		Marshaler:  envelope.Codec{},
//		Exchange: wamqp.ExchangeConfig{Type: "topic", Durable: true,
//			GenerateName: func(string) string { return envelope.DefaultExchange }},
//		// The router's subscribe topic is the service queue's name.
//		Queue: wamqp.QueueConfig{GenerateName: wamqp.GenerateQueueNameTopicName, Durable: true},
//		TopologyBuilder: amqp.TopologyBuilder{
//			Topology: amqp.Topology{Exchange: envelope.DefaultExchange},
//			Patterns: []string{"agent.thread.prompt"},
//		},
//	}, logger)
//
// Each Subscribe is a consumer of its own, so handlers that share a queue
// share its messages: give a queue one handler (see examples/watermill-amqp).
type TopologyBuilder struct {
	Topology
	// Patterns are the binding patterns of the queue. Required.
	Patterns []string
}

// BuildTopology implements watermill-amqp's TopologyBuilder.
func (b TopologyBuilder) BuildTopology(ch *amqp091.Channel, queueName, _ string, _ wamqp.Config, _ watermill.LoggerAdapter) error {
	return b.DeclareQueue(ch, queueName, b.Patterns...)
}

// ExchangeDeclare implements watermill-amqp's TopologyBuilder.
func (b TopologyBuilder) ExchangeDeclare(ch *amqp091.Channel, _ string, _ wamqp.Config) error {
	return b.DeclareExchange(ch)
}

var _ wamqp.TopologyBuilder = TopologyBuilder{}
