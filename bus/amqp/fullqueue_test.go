package amqp_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/internal/testcluster"
)

// TestDisruptive_brokerRestartWithFullQueue stops a broker holding 10,000
// ready messages while a consumer holds 256 more unacked, and starts it
// again: the consumer comes back by itself and every message is handled.
// It runs on a private node (bbq9, port 5689), never the system broker.
func TestDisruptive_brokerRestartWithFullQueue(t *testing.T) {
	if os.Getenv("BB_TEST_DISRUPTIVE") != "1" {
		t.Skip("stops and starts a RabbitMQ node: set BB_TEST_DISRUPTIVE=1 (make test-restart)")
	}
	const ready, unacked = 10000, 256
	node := testcluster.StartRabbitMQ(t, 9)
	conn, err := amqp.Dial(context.Background(), amqp.ConnectionConfig{URL: node.URL(9), ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	topo := amqp.Topology{Exchange: "bbtest.fullqueue"}
	const queue = "bbtest.fullqueue.service"
	marshaler := wamqp.DefaultMarshaler{} // persistent messages
	pub, err := amqp.NewPublisher(conn, amqp.PublisherConfig{Topology: topo, Marshaler: marshaler, ConfirmTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := amqp.NewSubscriber(conn, amqp.SubscriberConfig{Topology: topo, Marshaler: marshaler,
		SubscriberConfig: transport.SubscriberConfig{QueueName: func(string) string { return queue }, Consumers: unacked, DrainTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SubscribeInitialize("full.#"); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	confs := make([]*amqp.Confirmation, 0, ready+unacked)
	for i := range ready + unacked {
		id := fmt.Sprintf("m%05d", i)
		c, err := pub.PublishAsync(ctx, "full.msg", message.NewMessage(id, []byte(id)))
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, c)
	}
	for _, c := range confs {
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// The consumer takes exactly its prefetch and holds it unacked.
	msgs, err := sub.Subscribe(ctx, "full.#")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu         sync.Mutex
		deliveries = map[string]int{}
		held       []*message.Message
		holding    = true
		heldAll    = make(chan struct{})
		total      int
	)
	go func() {
		for m := range msgs {
			mu.Lock()
			deliveries[m.UUID]++
			total++
			if holding {
				held = append(held, m)
				if len(held) == unacked {
					close(heldAll)
				}
				mu.Unlock()
				continue
			}
			mu.Unlock()
			m.Ack()
		}
	}()
	select {
	case <-heldAll:
	case <-ctx.Done():
		t.Fatal("the consumer never held its prefetch")
	}
	if n := readyCount(t, node.URL(9), queue); n != ready {
		t.Fatalf("%d messages ready before the stop, want %d", n, ready)
	}

	stopped := time.Now()
	node.Stop(9)
	mu.Lock()
	holding = false
	for _, m := range held { // acks into a dead channel: the broker requeued them
		m.Ack()
	}
	mu.Unlock()
	down := time.Since(stopped)
	node.Start(9)
	t.Logf("broker down for %s (stop %s)", time.Since(stopped).Round(100*time.Millisecond), down.Round(100*time.Millisecond))

	restarted := time.Now()
	for {
		mu.Lock()
		distinct, n := len(deliveries), total
		mu.Unlock()
		if distinct == ready+unacked {
			t.Logf("broker restart with a full queue: %d ready + %d unacked, all %d handled %s after the restart, 0 lost, %d redeliveries",
				ready, unacked, distinct, time.Since(restarted).Round(100*time.Millisecond), n-distinct)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d messages handled after the restart", distinct, ready+unacked)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if n := readyCount(t, node.URL(9), queue); n != 0 {
		t.Errorf("%d messages left in the queue", n)
	}
}

func readyCount(t *testing.T, url, queue string) int {
	t.Helper()
	c, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}
