package embedded_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/transport"
)

// The embedded transport must pass Watermill's universal Pub/Sub suite: a
// peer's acceptance test, not ours. Constructed pub/subs share one broker,
// as services in one process share one RabbitMQ.
func TestEmbedded_universalPubSub(t *testing.T) {
	for _, mode := range []struct {
		name      string
		consumers int
		ordered   bool
	}{
		{"concurrent", 10, false},
		{"single_consumer", 1, true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			broker := embedded.New(nil)
			pubSub := func(t *testing.T) (message.Publisher, message.Subscriber) {
				return broker.Publisher(embedded.PublisherConfig{}),
					broker.Subscriber(transport.SubscriberConfig{Consumers: mode.consumers, DrainTimeout: time.Second})
			}
			groupPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
				return broker.Publisher(embedded.PublisherConfig{}),
					broker.Subscriber(transport.SubscriberConfig{
						Consumers:    mode.consumers,
						DrainTimeout: time.Second,
						QueueName:    func(topic string) string { return group + "/" + topic },
					})
			}
			tests.TestPubSub(t, tests.Features{
				ConsumerGroups:                      true,
				ExactlyOnceDelivery:                 false,
				GuaranteedOrder:                     mode.ordered,
				GuaranteedOrderWithSingleSubscriber: mode.ordered,
				Persistent:                          true,
				RequireSingleInstance:               false,
				NewSubscriberReceivesOldMessages:    false,
			}, pubSub, groupPubSub)
		})
	}
}
