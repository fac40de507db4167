package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// The raw baselines: amqp091-go used directly, as well as it can be, with
// nothing of the project in the way. Publishings carry the same properties
// the project's codec writes (persistent, content type and encoding,
// message id, timestamp) and a body of the same size.

// rawConns are the baseline's two connections, one to publish and one to
// consume, as the project's bus opens them.
type rawConns struct {
	pub, sub *amqp091.Connection
}

func (e *env) dialRaw() (*rawConns, error) { return dialRawAt(e.rabbitURL) }

// dialRawAt is dialRaw to the broker at url (an ack tap's).
func dialRawAt(url string) (*rawConns, error) {
	pub, err := amqp091.Dial(url)
	if err != nil {
		return nil, err
	}
	sub, err := amqp091.Dial(url)
	if err != nil {
		_ = pub.Close()
		return nil, err
	}
	return &rawConns{pub: pub, sub: sub}, nil
}

func (r *rawConns) close() {
	_ = r.pub.Close()
	_ = r.sub.Close()
}

func rawPublishing(body []byte) amqp091.Publishing {
	return amqp091.Publishing{
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp091.Persistent,
		MessageId:       uuid.NewString(),
		Timestamp:       time.Now(),
		Body:            body,
	}
}

func confirmChannel(conn *amqp091.Connection) (*amqp091.Channel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	return ch, nil
}

// confirmRing keeps up to n publishes in flight and settles the oldest
// when full: one goroutine, many confirms pending.
type confirmRing struct {
	pending   *ring[*amqp091.DeferredConfirmation]
	confirmed int
}

func newConfirmRing(n int) *confirmRing {
	return &confirmRing{pending: newRing[*amqp091.DeferredConfirmation](n)}
}

func (r *confirmRing) push(ctx context.Context, dc *amqp091.DeferredConfirmation) error {
	if r.pending.full() {
		if err := r.pop(ctx); err != nil {
			return err
		}
	}
	r.pending.push(dc)
	return nil
}

func (r *confirmRing) pop(ctx context.Context) error {
	dc := r.pending.pop()
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("publish %d nacked", dc.DeliveryTag)
	}
	r.confirmed++
	return nil
}

func (r *confirmRing) drain(ctx context.Context) error {
	for !r.pending.empty() {
		if err := r.pop(ctx); err != nil {
			return err
		}
	}
	return nil
}

// rawPublishPipelined publishes from one goroutine with inflight confirms
// pending until stop says so, and returns how many were confirmed.
func rawPublishPipelined(ctx context.Context, conn *amqp091.Connection, exchange, key string, inflight int,
	next func() amqp091.Publishing, stop func(sent int) bool) (int, error) {
	ch, err := confirmChannel(conn)
	if err != nil {
		return 0, err
	}
	defer func() { _ = ch.Close() }()
	ring := newConfirmRing(inflight)
	for sent := 0; !stop(sent); sent++ {
		if ctx.Err() != nil {
			return ring.confirmed, ctx.Err()
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, next())
		if err != nil {
			return ring.confirmed, err
		}
		if err := ring.push(ctx, dc); err != nil {
			return ring.confirmed, err
		}
	}
	err = ring.drain(ctx)
	return ring.confirmed, err
}

// prefill puts n distinct prompt envelopes in the queue bound to exchange.
func (e *env) prefill(ctx context.Context, conn *amqp091.Connection, exchange, queue string, n int) error {
	if err := e.purge(queue); err != nil {
		return err
	}
	_, err := rawPublishPipelined(ctx, conn, exchange, "agent.thread.prompt", 256, func() amqp091.Publishing {
		body, id := e.tmpl.promptBody()
		p := rawPublishing(body)
		p.MessageId = id.String()
		return p
	}, func(sent int) bool { return sent >= n })
	if err != nil {
		return fmt.Errorf("cannot prefill %s: %w", queue, err)
	}
	return e.waitReady(ctx, queue, n)
}

// rawPublish1 is the baseline of publish_confirmed_1: one goroutine, one
// channel, inflight publishes pending, each confirmed.
func (e *env) rawPublish1(ctx context.Context, rc *rawConns, exchange string, d time.Duration) (float64, error) {
	start := time.Now()
	deadline := start.Add(d)
	body := e.tmpl.prompt
	n, err := rawPublishPipelined(ctx, rc.pub, exchange, "agent.thread.prompt", e.o.inflight,
		func() amqp091.Publishing { return rawPublishing(body) },
		func(sent int) bool { return sent&63 == 0 && time.Now().After(deadline) })
	return float64(n) / time.Since(start).Seconds(), err
}

// rawPublish16 is the baseline of publish_confirmed_16: 16 goroutines, each
// on its own confirm-mode channel, each publishing and waiting for that
// publish's confirm before the next, as a synchronous Publish does.
func (e *env) rawPublish16(ctx context.Context, rc *rawConns, exchange string, d time.Duration) (float64, error) {
	body := e.tmpl.prompt
	return syncPublishers(ctx, 16, d, func() (func() error, func(), error) {
		ch, err := confirmChannel(rc.pub)
		if err != nil {
			return nil, nil, err
		}
		publish := func() error {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, "agent.thread.prompt", false, false, rawPublishing(body))
			if err != nil {
				return err
			}
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return fmt.Errorf("publish not confirmed: %v", err)
			}
			return nil
		}
		return publish, func() { _ = ch.Close() }, nil
	})
}

// syncPublishers runs workers goroutines for d, each calling the publish
// function that open gives it (and then its close) until the time is up,
// and returns the publishes per second, open included in the time. Both
// sides of publish_confirmed_16 are measured by it; the first error ends
// the run.
func syncPublishers(ctx context.Context, workers int, d time.Duration, open func() (publish func() error, close func(), err error)) (float64, error) {
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			publish, closeFn, err := open()
			if err != nil {
				errs <- err
				return
			}
			defer closeFn()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := publish(); err != nil {
					errs <- err
					return
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(total.Load()) / elapsed.Seconds(), ctx.Err()
}

// rawConsume is the baseline of consume_full_stack: one consumer with the
// same prefetch, acking each delivery, on conn (through tap, which times
// it from its basic.consume to its last ack; without a tap it returns 0).
func (e *env) rawConsume(ctx context.Context, conn *amqp091.Connection, tap *ackTap, queue string, n int) (float64, error) {
	if tap != nil {
		tap.reset()
	}
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	defer func() { _ = ch.Close() }()
	if err := ch.Qos(e.o.prefetch, 0, false); err != nil {
		return 0, err
	}
	dels, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	for i := 0; i < n; i++ {
		select {
		case d, ok := <-dels:
			if !ok {
				return 0, fmt.Errorf("consumer of %s closed after %d deliveries", queue, i)
			}
			if err := d.Ack(false); err != nil {
				return 0, err
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if tap == nil {
		return 0, nil
	}
	return tap.rate(ctx, n, 30*time.Second)
}

// rawCommand is the baseline of command_path: consume a command (same
// prefetch), publish a response of the same size with a confirm, and ack
// the command once the response is confirmed. Confirms are pipelined: the
// consuming goroutine never waits; a second goroutine acks in order as
// confirms arrive. Its connections go through tap, which times it from its
// basic.consume to its last ack.
func (e *env) rawCommand(ctx context.Context, rc *rawConns, tap *ackTap, queue, exchange string, n int) (float64, error) {
	tap.reset()
	sub, err := rc.sub.Channel()
	if err != nil {
		return 0, err
	}
	defer func() { _ = sub.Close() }()
	if err := sub.Qos(e.o.prefetch, 0, false); err != nil {
		return 0, err
	}
	pub, err := confirmChannel(rc.pub)
	if err != nil {
		return 0, err
	}
	defer func() { _ = pub.Close() }()
	dels, err := sub.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	type pending struct {
		d  amqp091.Delivery
		dc *amqp091.DeferredConfirmation
	}
	queueCh := make(chan pending, e.o.prefetch)
	ackErr := make(chan error, 1)
	go func() {
		defer close(ackErr)
		for i := 0; i < n; i++ {
			p, ok := <-queueCh
			if !ok {
				return
			}
			ok, err := p.dc.WaitContext(ctx)
			if err != nil || !ok {
				ackErr <- fmt.Errorf("response not confirmed: %v", err)
				return
			}
			if err := p.d.Ack(false); err != nil {
				ackErr <- err
				return
			}
		}
	}()
	body := e.tmpl.response
	for i := 0; i < n; i++ {
		var d amqp091.Delivery
		var ok bool
		select {
		case d, ok = <-dels:
		case <-ctx.Done():
			close(queueCh)
			return 0, ctx.Err()
		}
		if !ok {
			close(queueCh)
			return 0, fmt.Errorf("consumer of %s closed after %d deliveries", queue, i)
		}
		dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, exchange, "agent.thread.response", false, false, rawPublishing(body))
		if err != nil {
			close(queueCh)
			return 0, err
		}
		queueCh <- pending{d: d, dc: dc}
	}
	if err := <-ackErr; err != nil {
		return 0, err
	}
	return tap.rate(ctx, n, 30*time.Second)
}

// pace calls fn total times at a steady rate: the i-th call is due at
// start + i/rate; a late call is made at once, so the average holds.
func pace(ctx context.Context, rate, total int, fn func() error) error {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; i < total; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}
