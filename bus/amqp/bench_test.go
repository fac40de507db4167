package amqp_test

// Benchmarks of the AMQP transport against the real broker, next to the
// raw amqp091-go client doing the same work. Besides ns/op (bound by the
// broker, and noisy on a shared machine) each reports cpu-µs/msg: the CPU
// time this process spent per message, the client's own cost, which is
// what the transport can change. Run with a fixed count, e.g.
//
//	go test -run '^$' -bench 'AMQP|Raw' -benchtime 20000x ./bus/amqp

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports the CPU per message of the timed part of a benchmark.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) *cpuMeter {
	b.ResetTimer()
	return &cpuMeter{b: b, start: cpuTime()}
}

func (m *cpuMeter) stop(n int) {
	m.b.StopTimer()
	m.b.ReportMetric(float64(cpuTime()-m.start)/float64(time.Microsecond)/float64(n), "cpu-µs/msg")
	m.b.ReportMetric(float64(n)/m.b.Elapsed().Seconds(), "msg/s")
}

func benchBody(b *testing.B) (envelope.Envelope, []byte) {
	p, _ := json.Marshal(map[string]any{"provider": "anthropic", "prompt": strings.Repeat("Explain the codec. ", 45), "tags": []string{"bench"}})
	env, err := envelope.New("agent.thread.prompt", json.RawMessage(p), envelope.WithCorrelationIDs(uuid.New()),
		envelope.WithSource(envelope.Source{Host: "h", Type: envelope.TriggerManual, App: "bench"}))
	if err != nil {
		b.Fatal(err)
	}
	body, err := env.MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	return env, body
}

// prefill puts n copies of body in queue (bound to the exchange), with 256
// confirms in flight.
func (r *rabbit) prefill(b *testing.B, queue string, body []byte, n int) {
	conn := r.raw()
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := r.topology().DeclareQueue(ch, queue, "agent.thread.prompt"); err != nil {
		b.Fatal(err)
	}
	if _, err := ch.QueuePurge(queue, false); err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	var pending []*amqp091.DeferredConfirmation
	for i := 0; i < n; i++ {
		dc, err := ch.PublishWithDeferredConfirm(r.exchange, "agent.thread.prompt", false, false,
			amqp091.Publishing{DeliveryMode: amqp091.Persistent, MessageId: uuid.NewString(), Body: body})
		if err != nil {
			b.Fatal(err)
		}
		pending = append(pending, dc)
		if len(pending) == 256 || i == n-1 {
			for _, dc := range pending {
				dc.Wait()
			}
			pending = pending[:0]
		}
	}
	_ = ch.Close()
}

// BenchmarkAMQPSubscriber_consume consumes b.N prefilled envelopes through
// a Subscriber (decode, dispatch, ack after the handler's ack), with
// prefetch 256 and 16 consumers, no router and no middleware.
func BenchmarkAMQPSubscriber_consume(b *testing.B) {
	r := newRabbit(b)
	q := r.queue("consume")
	_, body := benchBody(b)
	r.prefill(b, q, body, b.N)
	sub, err := amqp.NewSubscriber(r.conn, amqp.SubscriberConfig{
		SubscriberConfig: transport.SubscriberConfig{QueueName: func(string) string { return q }, Consumers: 16, Prefetch: 256},
		Topology:         r.topology(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := startCPU(b)
	msgs, err := sub.Subscribe(ctx, "agent.thread.prompt")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	for range 16 {
		go func() {
			for msg := range msgs {
				msg.Ack()
				select {
				case done <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		<-done
	}
	m.stop(b.N)
}

// BenchmarkRawConsume_amqp091 is the baseline of the benchmark above: one
// amqp091 consumer, prefetch 256, acking each delivery.
func BenchmarkRawConsume_amqp091(b *testing.B) {
	r := newRabbit(b)
	q := r.queue("raw")
	_, body := benchBody(b)
	r.prefill(b, q, body, b.N)
	conn := r.raw()
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Qos(256, 0, false); err != nil {
		b.Fatal(err)
	}
	m := startCPU(b)
	dels, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		d := <-dels
		_ = d.Ack(false)
	}
	m.stop(b.N)
}

// BenchmarkAMQPPublisher_PublishAsync publishes b.N envelopes from one
// goroutine with PublishAsync, 256 confirms in flight, building each
// message (envelope.NewMessage) as a producer does.
func BenchmarkAMQPPublisher_PublishAsync(b *testing.B) {
	r := newRabbit(b)
	q := r.queue("publish")
	env, body := benchBody(b)
	r.prefill(b, q, body, 0)
	pub, err := amqp.NewPublisher(r.conn, amqp.PublisherConfig{Topology: r.topology()})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	ctx := context.Background()
	var pending []*amqp.Confirmation
	m := startCPU(b)
	for i := 0; i < b.N; i++ {
		env.EventID = uuid.New()
		msg, err := envelope.NewMessage(env)
		if err != nil {
			b.Fatal(err)
		}
		c, err := pub.PublishAsync(ctx, "agent.thread.prompt", msg)
		if err != nil {
			b.Fatal(err)
		}
		pending = append(pending, c)
		if len(pending) == 256 {
			if err := pending[0].Wait(ctx); err != nil {
				b.Fatal(err)
			}
			pending = pending[1:]
		}
	}
	for _, c := range pending {
		if err := c.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	m.stop(b.N)
}

// BenchmarkRawPublish_amqp091 is the baseline of the benchmark above: one
// goroutine, one confirm-mode channel, 256 publishes in flight.
func BenchmarkRawPublish_amqp091(b *testing.B) {
	r := newRabbit(b)
	q := r.queue("rawpublish")
	_, body := benchBody(b)
	r.prefill(b, q, body, 0)
	conn := r.raw()
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	var pending []*amqp091.DeferredConfirmation
	m := startCPU(b)
	for i := 0; i < b.N; i++ {
		dc, err := ch.PublishWithDeferredConfirm(r.exchange, "agent.thread.prompt", false, false,
			amqp091.Publishing{ContentType: "application/json", DeliveryMode: amqp091.Persistent, MessageId: uuid.NewString(), Body: body})
		if err != nil {
			b.Fatal(err)
		}
		pending = append(pending, dc)
		if len(pending) == 256 {
			pending[0].Wait()
			pending = pending[1:]
		}
	}
	for _, dc := range pending {
		dc.Wait()
	}
	m.stop(b.N)
}

var _ message.Subscriber = (*amqp.Subscriber)(nil)
