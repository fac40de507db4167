package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// latencySlice is how long one side publishes before the other takes over.
const latencySlice = time.Second

// latencyRig measures latency_p99_ms. Both consumers run for the whole
// benchmark, as a service runs for days; in a round the publishing
// alternates between the raw path and the project path every
// latencySlice, each publishing at the same steady rate for the same time,
// so that a burst of load from elsewhere on a shared machine falls on both
// alike. The latency of a message runs from just before its publish call
// (before the project builds its message) to the start of its handler (raw:
// its arrival in the consumer).
//
//   - raw: an amqp091 publisher on a confirm-mode channel, confirms settled
//     by another goroutine, and a consumer with the same prefetch acking
//     each delivery;
//   - project: AMQPPublisher.PublishAsync (confirms settled by another
//     goroutine) and a service with the middleware of consume_full_stack.
type latencyRig struct {
	e       *env
	xr      string
	rawPub  *amqp091.Channel
	pub     *amqp.Publisher
	stopSvc func() error
	sub     *amqp091.Channel

	// The samples of the round in progress, and the counts of messages
	// consumed since the rig started.
	rawLat, projLat atomic.Pointer[latencies]
	rawGot, projGot atomic.Int64
	rawSent         int64
	projSent        int64

	rawConfirms  chan *amqp091.DeferredConfirmation
	projConfirms chan *amqp.Confirmation
	confirmErr   chan error
	settled      chan struct{}
}

func (e *env) newLatencyRig(ctx context.Context, rc *rawConns, xr, qr string, st *stack, pub *amqp.Publisher) (*latencyRig, error) {
	r := &latencyRig{e: e, xr: xr, pub: pub,
		rawConfirms: make(chan *amqp091.DeferredConfirmation, 8192), projConfirms: make(chan *amqp.Confirmation, 8192),
		confirmErr: make(chan error, 2), settled: make(chan struct{}, 2)}
	r.rawLat.Store(newLatencies(0))
	r.projLat.Store(newLatencies(0))
	var err error
	if r.sub, err = rc.sub.Channel(); err != nil {
		return nil, err
	}
	if err := r.sub.Qos(e.o.prefetch, 0, false); err != nil {
		return nil, err
	}
	dels, err := r.sub.Consume(qr, "", false, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	go func() {
		for dv := range dels {
			now := time.Now().UnixNano()
			if sent, ok := dv.Headers["bench_sent"].(int64); ok {
				r.rawLat.Load().add(time.Duration(now - sent))
			}
			_ = dv.Ack(false)
			r.rawGot.Add(1)
		}
	}()

	svc, err := st.newService(ctx, "latency", true)
	if err != nil {
		return nil, err
	}
	if err := bus.Handle(svc, "bench_latency", thread.RoutingKeyPrompt, func(ctx context.Context, ev bus.Event[thread.Prompt]) error {
		now := time.Now().UnixNano()
		if sent, err := strconv.ParseInt(ev.Message.Metadata.Get("bench_sent"), 10, 64); err == nil {
			r.projLat.Load().add(time.Duration(now - sent))
		}
		r.projGot.Add(1)
		return nil
	}); err != nil {
		return nil, err
	}
	if r.stopSvc, err = runService(ctx, svc); err != nil {
		return nil, err
	}
	if r.rawPub, err = confirmChannel(rc.pub); err != nil {
		return nil, err
	}
	go func() {
		defer func() { r.settled <- struct{}{} }()
		for dc := range r.rawConfirms {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				r.fail(fmt.Errorf("raw publish not confirmed: %v", err))
			}
		}
	}()
	go func() {
		defer func() { r.settled <- struct{}{} }()
		for c := range r.projConfirms {
			if err := c.Wait(ctx); err != nil {
				r.fail(err)
			}
		}
	}()
	return r, nil
}

func (r *latencyRig) fail(err error) {
	select {
	case r.confirmErr <- err:
	default:
	}
}

func (r *latencyRig) close() {
	close(r.rawConfirms)
	close(r.projConfirms)
	<-r.settled
	<-r.settled
	_ = r.stopSvc()
	_ = r.rawPub.Close()
	_ = r.sub.Close()
}

func (r *latencyRig) publishRaw(ctx context.Context) error {
	p := rawPublishing(r.e.tmpl.prompt)
	p.Headers = amqp091.Table{"bench_sent": time.Now().UnixNano()}
	dc, err := r.rawPub.PublishWithDeferredConfirmWithContext(ctx, r.xr, thread.RoutingKeyPrompt, false, false, p)
	if err == nil {
		r.rawConfirms <- dc
		r.rawSent++
	}
	return err
}

func (r *latencyRig) publishProject(ctx context.Context) error {
	sent := time.Now().UnixNano()
	env, err := r.e.tmpl.promptEnvelope()
	if err != nil {
		return err
	}
	msg, err := envelope.NewMessage(env)
	if err != nil {
		return err
	}
	msg.Metadata.Set("bench_sent", strconv.FormatInt(sent, 10))
	c, err := r.pub.PublishAsync(ctx, thread.RoutingKeyPrompt, msg)
	if err == nil {
		r.projConfirms <- c
		r.projSent++
	}
	return err
}

// round publishes rate×d messages on each side in alternating slices and
// returns the latencies of each, once every message was consumed.
func (r *latencyRig) round(ctx context.Context, rate int, d time.Duration, projectFirst bool) (raw, proj []time.Duration, err error) {
	perSide := int(float64(rate) * d.Seconds())
	rawLat, projLat := newLatencies(perSide), newLatencies(perSide)
	r.rawLat.Store(rawLat)
	r.projLat.Store(projLat)
	perSlice := max(1, int(float64(rate)*latencySlice.Seconds()))
	rawLeft, projLeft := perSide, perSide
	for turn := 0; rawLeft > 0 || projLeft > 0; turn++ {
		projectTurn := (turn%2 == 0) == projectFirst
		switch {
		case projectTurn && projLeft > 0:
			n := min(perSlice, projLeft)
			projLeft -= n
			err = pace(ctx, rate, n, func() error { return r.publishProject(ctx) })
		case !projectTurn && rawLeft > 0:
			n := min(perSlice, rawLeft)
			rawLeft -= n
			err = pace(ctx, rate, n, func() error { return r.publishRaw(ctx) })
		}
		if err != nil {
			return nil, nil, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.rawGot.Load() < r.rawSent || r.projGot.Load() < r.projSent {
		select {
		case err := <-r.confirmErr:
			return nil, nil, err
		default:
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("latency: consumed raw %d of %d, project %d of %d", r.rawGot.Load(), r.rawSent, r.projGot.Load(), r.projSent)
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		time.Sleep(10 * time.Millisecond)
	}
	return rawLat.values(), projLat.values(), nil
}
