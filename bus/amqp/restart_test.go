package amqp_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
)

// restartBroker restarts the RabbitMQ application, and always leaves it running.
func restartBroker(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("rabbitmqctl", "stop_app").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl stop_app: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "start_app").Run() })
	time.Sleep(time.Second) // the broker is down for a while, as in a real restart
	if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl start_app: %v\n%s", err, out)
	}
	if out, err := exec.Command("rabbitmqctl", "await_startup").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl await_startup: %v\n%s", err, out)
	}
}

// The broker restarts under a running service: publishing and consuming
// resume in the same process, with the topology declared again. It stops
// RabbitMQ, so it runs only when asked (make test runs it alone, after
// everything else): BB_TEST_DISRUPTIVE=1.
func TestDisruptive_brokerRestartResumes(t *testing.T) {
	if os.Getenv("BB_TEST_DISRUPTIVE") != "1" {
		t.Skip("restarts RabbitMQ; run alone with BB_TEST_DISRUPTIVE=1 (make test does)")
	}
	r := newRabbit(t)
	queue := r.queue("restart")
	sub, err := amqp.NewSubscriber(r.conn, amqp.SubscriberConfig{
		Topology:         r.topology(),
		SubscriberConfig: transport.SubscriberConfig{QueueName: func(string) string { return queue }, DrainTimeout: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pubConn, err := amqp.Dial(context.Background(), amqp.ConnectionConfig{URL: r.url})
	if err != nil {
		t.Fatal(err)
	}
	defer pubConn.Close()
	pub, err := amqp.NewPublisher(pubConn, amqp.PublisherConfig{Topology: r.topology(), ConfirmTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "restart.#")
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan string, 100)
	go func() {
		for m := range msgs {
			received <- m.UUID
			m.Ack()
		}
	}()
	publish := func() string {
		t.Helper()
		env, _ := envelope.New("restart.event", map[string]any{"n": 1})
		msg, _ := envelope.NewMessage(env)
		// A publish during recovery may fail; the caller sees the error and
		// retries, as a producer must under at-least-once.
		for {
			err := pub.Publish("restart.event", msg)
			if err == nil {
				return msg.UUID
			}
			t.Logf("publish while recovering: %v", err)
			select {
			case <-ctx.Done():
				t.Fatalf("publishing did not resume: %v", err)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	expect := func(id string) {
		t.Helper()
		for {
			select {
			case got := <-received:
				if got == id {
					return
				}
			case <-ctx.Done():
				t.Fatalf("event %s was not received", id)
			}
		}
	}
	expect(publish())
	restartBroker(t)
	// After the restart both sides come back by themselves; events published
	// now reach the resubscribed consumer.
	expect(publish())
	expect(publish())
	if !r.conn.Connected() || !pubConn.Connected() {
		t.Error("a connection did not come back")
	}
}
