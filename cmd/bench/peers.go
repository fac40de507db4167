package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// The peers of the compass, measured in the same run as the project, on
// the same envelopes, each against the project's own path; ratio =
// project / peer, so 2.0 means twice as fast.
//
//   - peer_watermill_publish: publish_confirmed_1's path (one goroutine,
//     -inflight confirms pending) against watermill-amqp's Publisher with
//     Publish.ConfirmDelivery at the setting that publishes fastest with it
//     on this machine: 16 goroutines sharing a pool of 16 channels
//     (Publish.ChannelPoolSize), each Publish waiting for its confirm.
//   - peer_watermill_consume: a bus.Service without middleware and a typed
//     handler against a Watermill router on watermill-amqp's Subscriber,
//     without middleware, whose handler decodes the same payload; the same
//     prefetch, both timed by an ack tap.
//   - peer_python_publish: the Python Bloodbank's way of publishing
//     (aio-pika, publisher confirms, each publish awaited before the next)
//     when python3 has aio_pika; otherwise the run says it was skipped.

// peerWorkers is the goroutines and the channel pool of the Watermill
// publisher.
const peerWorkers = 16

// watermillPublish publishes to exchange with routing key
// agent.thread.prompt for d from peerWorkers goroutines.
func (e *env) watermillPublish(ctx context.Context, exchange string, d time.Duration) (float64, error) {
	cfg := wamqp.Config{
		Connection: wamqp.ConnectionConfig{AmqpURI: e.rabbitURL},
		Marshaler:  wamqp.DefaultMarshaler{},
		Exchange: wamqp.ExchangeConfig{
			GenerateName: func(string) string { return exchange },
			Type:         "topic",
			Durable:      true,
		},
		Publish: wamqp.PublishConfig{
			GenerateRoutingKey: func(string) string { return thread.RoutingKeyPrompt },
			ConfirmDelivery:    true,
			ChannelPoolSize:    peerWorkers,
		},
		TopologyBuilder: &wamqp.DefaultTopologyBuilder{},
	}
	pub, err := wamqp.NewPublisher(cfg, watermill.NopLogger{})
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	return syncPublishers(ctx, peerWorkers, d, func() (func() error, func(), error) {
		publish := func() error {
			body, id := e.tmpl.promptBody()
			msg := message.NewMessage(id.String(), body)
			msg.SetContext(ctx)
			return pub.Publish(exchange, msg)
		}
		return publish, func() {}, nil
	})
}

// watermillConsume runs a Watermill router on watermill-amqp's Subscriber
// on queue (prefilled with n prompts) until tap counted n acks.
func (e *env) watermillConsume(ctx context.Context, tap *ackTap, queue string, n int) (float64, error) {
	cfg := wamqp.Config{
		Connection: wamqp.ConnectionConfig{AmqpURI: tap.url(e.rabbitURL)},
		Marshaler:  wamqp.DefaultMarshaler{},
		// No exchange: the queue is declared and bound already.
		Exchange: wamqp.ExchangeConfig{GenerateName: func(string) string { return "" }},
		Queue: wamqp.QueueConfig{
			GenerateName: func(string) string { return queue },
			Durable:      true,
		},
		Consume:         wamqp.ConsumeConfig{Qos: wamqp.QosConfig{PrefetchCount: e.o.prefetch}},
		TopologyBuilder: &wamqp.DefaultTopologyBuilder{},
	}
	tap.reset()
	sub, err := wamqp.NewSubscriber(cfg, watermill.NopLogger{})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return 0, err
	}
	p := newProgress(n)
	router.AddConsumerHandler("bench_watermill", queue, sub, func(msg *message.Message) error {
		var env struct {
			Payload thread.Prompt `json:"payload"`
		}
		if err := json.Unmarshal(msg.Payload, &env); err != nil {
			return err
		}
		if env.Payload.Prompt == "" {
			return errors.New("empty prompt")
		}
		p.add()
		return nil
	})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- router.Run(rctx) }()
	werr := p.wait(ctx, 2*time.Minute)
	var rate float64
	if werr == nil {
		rate, werr = tap.rate(ctx, n, 2*time.Minute)
	}
	cancel()
	if err := <-done; err != nil && werr == nil {
		werr = err
	}
	return rate, werr
}

// pythonPeer says why peer_python_publish cannot run here, or "".
func pythonPeer() string {
	if _, err := exec.LookPath("python3"); err != nil {
		return "no python3"
	}
	if err := exec.Command("python3", "-c", "import aio_pika").Run(); err != nil {
		return "python3 has no aio_pika"
	}
	return ""
}

// pythonPublisher publishes as the Python Bloodbank's Publisher does
// (event_producers/rabbit.py): aio-pika, a channel with publisher
// confirms, the durable topic exchange, each persistent message built
// (a new event id, serialized) and its publish awaited before the next.
// It reads the template envelope on stdin and prints "rate <msg/s>".
const pythonPublisher = `
import asyncio, json, os, sys, time, uuid
import aio_pika

try:
    import orjson
    dumps = orjson.dumps
except ImportError:
    dumps = lambda v: json.dumps(v, separators=(",", ":")).encode()

async def main():
    template = json.loads(sys.stdin.buffer.read())
    conn = await aio_pika.connect_robust(os.environ["BENCH_RABBIT_URL"])
    async with conn:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            os.environ["BENCH_EXCHANGE"], aio_pika.ExchangeType.TOPIC, durable=True)
        key = os.environ["BENCH_ROUTING_KEY"]
        duration = float(os.environ["BENCH_SECONDS"])
        n = 0
        start = time.monotonic()
        while time.monotonic() - start < duration:
            event_id = str(uuid.uuid4())
            template["event_id"] = event_id
            message = aio_pika.Message(
                body=dumps(template),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event_id,
            )
            await exchange.publish(message, routing_key=key)
            n += 1
        print("rate", n / (time.monotonic() - start))

asyncio.run(main())
`

// pythonPublish runs pythonPublisher against exchange for d.
func (e *env) pythonPublish(ctx context.Context, exchange string, d time.Duration) (float64, error) {
	cmd := exec.CommandContext(ctx, "python3", "-c", pythonPublisher)
	cmd.Env = append(os.Environ(), "BENCH_RABBIT_URL="+e.rabbitURL, "BENCH_EXCHANGE="+exchange,
		"BENCH_ROUTING_KEY="+thread.RoutingKeyPrompt, "BENCH_SECONDS="+strconv.FormatFloat(d.Seconds(), 'f', 3, 64))
	cmd.Stdin = strings.NewReader(string(e.tmpl.prompt))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			// aio-pika may print the URL it was given, password and all.
			msg := strings.ReplaceAll(string(ee.Stderr), e.rabbitURL, amqp.RedactURL(e.rabbitURL))
			return 0, fmt.Errorf("python publisher: %v: %s", err, msg)
		}
		return 0, fmt.Errorf("python publisher: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != "rate" {
		return 0, fmt.Errorf("python publisher printed %q", out)
	}
	return strconv.ParseFloat(f[1], 64)
}
