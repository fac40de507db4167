package reliability

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/middleware"
)

// DefaultRedeliveryDelays are the delay queues NewDelayQueues declares when
// given none; redeliveries beyond them wait the last one.
var DefaultRedeliveryDelays = []time.Duration{time.Second, 10 * time.Second, time.Minute}

// RetryQueueName names the delay queue of a service queue for one delay:
// "{serviceQueue}.retry.{delay}", the delay written in its largest whole
// unit ("1s", "10s", "1m", "250ms"). The name is part of the contract:
// RabbitMQ refuses to declare it again with another delay or target.
func RetryQueueName(serviceQueue string, delay time.Duration) string {
	return serviceQueue + ".retry." + formatDelay(delay)
}

func formatDelay(d time.Duration) string {
	switch {
	case d <= 0:
		return d.String()
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return d.String()
}

// DelayQueueBroker is what DelayQueues needs of a broker. *bus.Bus
// implements it, on RabbitMQ and on the embedded transport.
type DelayQueueBroker interface {
	// DeclareDelayQueue declares a durable queue that holds each message for
	// delay, then moves it to the queue deadLetterTo.
	DeclareDelayQueue(ctx context.Context, name string, delay time.Duration, deadLetterTo string) error
	// QueuePublisher is a confirmed publisher whose topic is a queue name.
	QueuePublisher() message.Publisher
}

// DelayQueuesConfig configures DelayQueues.
type DelayQueuesConfig struct {
	// ServiceQueue is where messages come back to (bus.Service.QueueName). Required.
	ServiceQueue string
	// Delays are the waits of the delay queues, one queue each: redelivery
	// n waits Delays[n-1], or the last one when n is beyond them. Optional;
	// default DefaultRedeliveryDelays. Each must be positive.
	Delays []time.Duration
}

// Validate reports every problem of the configuration at once.
func (c DelayQueuesConfig) Validate() error {
	var errs []error
	if c.ServiceQueue == "" {
		errs = append(errs, errors.New("ServiceQueue is required"))
	}
	for i, d := range c.Delays {
		if d <= 0 {
			//lint:ignore ST1005 the message starts with the config field's name
			errs = append(errs, fmt.Errorf("Delays[%d] %s is not positive", i, d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid middleware DelayQueuesConfig: %w", err)
	}
	return nil
}

// DelayQueues is the middleware.Redeliverer of a Bloodbank service (see the
// package doc). A message comes back after its delay under its original
// routing key, to the handler that failed, with the body it arrived with.
type DelayQueues struct {
	pub    message.Publisher
	queues []string
}

var _ middleware.Redeliverer = (*DelayQueues)(nil)

// NewDelayQueues declares the delay queues of a service queue.
func NewDelayQueues(ctx context.Context, broker DelayQueueBroker, cfg DelayQueuesConfig) (*DelayQueues, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Delays) == 0 {
		cfg.Delays = DefaultRedeliveryDelays
	}
	dq := &DelayQueues{pub: broker.QueuePublisher()}
	for _, d := range cfg.Delays {
		name := RetryQueueName(cfg.ServiceQueue, d)
		if err := broker.DeclareDelayQueue(ctx, name, d, cfg.ServiceQueue); err != nil {
			return nil, fmt.Errorf("cannot declare delay queue: %w", err)
		}
		dq.queues = append(dq.queues, name)
	}
	return dq, nil
}

// Queues lists the delay queues, in the order of their delays.
func (dq *DelayQueues) Queues() []string { return slices.Clone(dq.queues) }

// Redeliver publishes p.Message to the delay queue of redelivery
// p.Redelivery and returns once the broker confirmed it.
func (dq *DelayQueues) Redeliver(ctx context.Context, p middleware.RedeliverParams) error {
	i := min(max(p.Redelivery, 1), len(dq.queues)) - 1
	p.Message.SetContext(ctx)
	if err := dq.pub.Publish(dq.queues[i], p.Message); err != nil {
		return fmt.Errorf("cannot publish to delay queue %q: %w", dq.queues[i], err)
	}
	return nil
}
