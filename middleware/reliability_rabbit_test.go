package middleware_test

// The RabbitMQ harness of the reliability integration tests: a bus on the
// real broker with a test-only exchange and service, whose queues are
// deleted when the test ends.

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// relTestDelays are the delay queues of the integration tests: short, so
// that a redelivery takes a fraction of a second.
var relTestDelays = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond}

type relRabbit struct {
	t        testing.TB
	url      string
	exchange string
	service  string
	cfg      bus.Config
	bus      *bus.Bus
}

// relNewRabbit opens a bus on RabbitMQ for a new exchange "bbtest.<random>"
// and service, and deletes the exchange and the service's queues (service
// queue, poison queue, delay queues) when the test ends. env adds settings.
func relNewRabbit(t testing.TB, logger *slog.Logger, env ...string) *relRabbit {
	t.Helper()
	url := testenv.RabbitURL(t)
	suffix := strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	r := &relRabbit{t: t, url: url, exchange: "bbtest." + suffix, service: "svc_" + suffix}
	r.open(logger, env...)
	return r
}

// relJoinRabbit opens another bus on the exchange and service of r (another
// process of the same service), without cleanup of the queues.
func relJoinRabbit(t testing.TB, url, exchange, service string, logger *slog.Logger, env ...string) *relRabbit {
	t.Helper()
	r := &relRabbit{t: t, url: url, exchange: exchange, service: service}
	r.openBus(logger, env...)
	return r
}

func (r *relRabbit) open(logger *slog.Logger, env ...string) {
	t := r.t
	t.Helper()
	// Registered first, so it runs last: after the services and the bus closed.
	t.Cleanup(func() {
		conn, err := amqp091.Dial(r.url)
		if err != nil {
			t.Logf("cannot clean up %s: %v", r.exchange, err)
			return
		}
		defer conn.Close()
		sq := r.serviceQueue()
		queues := []string{sq, reliability.PoisonQueueName(sq)}
		for _, d := range append(append([]time.Duration(nil), relTestDelays...), reliability.DefaultRedeliveryDelays...) {
			queues = append(queues, reliability.RetryQueueName(sq, d))
		}
		for _, q := range queues {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
				_ = ch.Close()
			}
		}
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(r.exchange, false, false)
			_ = ch.Close()
		}
	})
	r.openBus(logger, env...)
}

func (r *relRabbit) openBus(logger *slog.Logger, env ...string) {
	t := r.t
	t.Helper()
	cfg, err := bus.LoadConfig(append([]string{
		"RABBIT_URL=" + r.url, "EXCHANGE_NAME=" + r.exchange, "SERVICE_NAME=" + r.service,
		"BB_DRAIN_TIMEOUT=3s", "BB_CONNECT_TIMEOUT=30s", "BB_PUBLISH_TIMEOUT=5s",
	}, env...), "")
	if err != nil {
		t.Fatal(err)
	}
	r.cfg = cfg
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r.bus, err = bus.Open(ctx, cfg, logger); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.bus.Close() })
}

func (r *relRabbit) serviceQueue() string { return bus.ServiceQueueName(r.exchange, r.service) }

// raw is a plain amqp091 connection, standing in for a foreign producer.
func (r *relRabbit) raw() *amqp091.Connection {
	r.t.Helper()
	conn, err := amqp091.Dial(r.url)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// publishRaw publishes body as is to the exchange, confirmed, as a producer
// that does not use this module would. An empty messageID sets none.
func (r *relRabbit) publishRaw(conn *amqp091.Connection, routingKey string, body []byte, messageID string) {
	r.t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, r.exchange, routingKey, true, false, amqp091.Publishing{
		ContentType: "application/json", DeliveryMode: amqp091.Persistent, MessageId: messageID, Body: body,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		r.t.Fatalf("publish of %q not confirmed: %v", body, err)
	}
}

// queueLen is the number of ready messages in a queue (-1 if it is missing).
func (r *relRabbit) queueLen(conn *amqp091.Connection, name string) int {
	r.t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Messages
}

// newService returns the service of r with the reliability stack.
func (r *relRabbit) newService(cfg reliability.Config) (*bus.Service, *reliability.Stack) {
	r.t.Helper()
	svc, err := r.bus.NewService("")
	if err != nil {
		r.t.Fatal(err)
	}
	if cfg.RedeliveryDelays == nil {
		cfg.RedeliveryDelays = relTestDelays
	}
	rel, err := reliability.Use(context.Background(), r.bus, svc, cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	return svc, rel
}
