package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/cqrs/commands"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// stack is the project as a service runs it: a bus on RabbitMQ, the event
// catalogue, the correlation store on Redis behind a batching Recorder,
// and the deduplication store on Redis.
type stack struct {
	e          *env
	b          *bus.Bus
	rec        *correlation.Recorder
	dedup      middleware.DedupStore
	registry   *domains.Registry
	validation *middleware.Validation
	rels       []*reliability.Stack
	closed     bool
}

// openStack opens a bus on exchange. With recordPublished, what the bus
// publishes with a handler's context is linked and recorded (the
// correlation publisher decorator).
func (e *env) openStack(ctx context.Context, exchange string, recordPublished bool) (*stack, error) {
	return e.openStackAt(ctx, e.rabbitURL, exchange, recordPublished)
}

// openStackAt is openStack on the broker at rabbitURL (an ack tap's).
func (e *env) openStackAt(ctx context.Context, rabbitURL, exchange string, recordPublished bool) (*stack, error) {
	cfg := e.cfg
	cfg.RabbitURL = rabbitURL
	cfg.ExchangeName = exchange
	b, err := bus.Open(ctx, cfg, e.logger)
	if err != nil {
		return nil, err
	}
	s := &stack{e: e, b: b}
	store, err := correlation.NewRedisStore(e.redis, correlation.RedisConfig{KeyPrefix: e.redisPrefix() + "correlation:", TTL: time.Hour})
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	if s.rec, err = correlation.NewRecorder(store, correlation.RecorderConfig{Batching: true, Logger: e.logger}); err != nil {
		_ = b.Close()
		return nil, err
	}
	if recordPublished {
		b.DecoratePublisher(func(p message.Publisher) message.Publisher { return middleware.NewRecordingPublisher(p, s.rec) })
	}
	s.dedup = middleware.NewRedisDedupStore(e.redis, e.redisPrefix()+"dedup:")
	if s.registry, err = catalog.New(); err != nil {
		_ = b.Close()
		return nil, err
	}
	if s.validation, err = middleware.NewValidation(middleware.ValidationConfig{Validator: s.registry}); err != nil {
		_ = b.Close()
		return nil, err
	}
	return s, nil
}

func (s *stack) close() {
	if s.closed {
		return
	}
	s.closed = true
	_ = s.b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.rec.Close(ctx)
	for _, r := range s.rels {
		_ = r.Flush(ctx) // before the run's keys are deleted
	}
}

// summary closes the stack and says what its middleware did over the whole
// run, to show that every stage really ran: deduplication marks, parked
// messages, correlation links written.
func (s *stack) summary(name string) string {
	s.close()
	var dedup middleware.DedupStats
	var parked, retried uint64
	for _, r := range s.rels {
		st := r.Stats()
		dedup.Processed += st.Dedup.Processed
		dedup.Duplicates += st.Dedup.Duplicates
		dedup.StoreErrors += st.Dedup.StoreErrors
		parked += st.Poison.Parked
		retried += st.Retry.Retried + st.Retry.Redelivered
	}
	return fmt.Sprintf("%s project stack: dedup marked %d (duplicates %d, store errors %d), retried %d, parked %d, correlation links recorded %d (failed %d)",
		name, dedup.Processed, dedup.Duplicates, dedup.StoreErrors, retried, parked, s.rec.Recorded(), s.rec.Failed())
}

// newService is a service with the default middleware of a Bloodbank
// service, outermost first: poison queue, deduplication (Redis), retry
// (with delay queues), validation against the catalogue, causation; and,
// with recordReceived, the recording of each handled event's own link.
func (s *stack) newService(ctx context.Context, name string, recordIncoming bool) (*bus.Service, error) {
	if s.e.o.stack == "bare" {
		return s.newBareService(name)
	}
	svc, err := s.newBareService(name)
	if err != nil {
		return nil, err
	}
	// The marks outlive no run by more than the hour the package doc
	// promises: the memory run alone writes 900,000 of them.
	rcfg := reliability.Config{DedupStore: s.dedup, DedupWindow: time.Hour, DedupMarkInBackground: true, Logger: s.e.logger}
	if s.e.o.stack == "nodedup" {
		rcfg.DedupStore = nil
	}
	rel, err := reliability.Use(ctx, s.b, svc, rcfg)
	if err != nil {
		return nil, err
	}
	s.rels = append(s.rels, rel)
	svc.Use(s.validation.Middleware, middleware.Causation)
	if recordIncoming {
		svc.Use(recordReceived(s.rec))
	}
	return svc, nil
}

// recordReceived records the correlation link of every event a handler
// handled successfully: child = the event, parents = its correlation_ids,
// through the batching Recorder. A consumer does this when its producers
// (the Python publisher records only with enable_correlation_tracking on)
// may not have. The writes are the ones of wire-contract section 4:
// forward key, reverse sets, TTLs.
func recordReceived(rec *correlation.Recorder) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err != nil {
				return out, err
			}
			parents := envelope.CorrelationIDs(msg)
			if child, perr := uuid.Parse(msg.UUID); perr == nil && len(parents) > 0 {
				rec.Record(msg.Context(), correlation.Link{Child: child, Parents: parents,
					Metadata: map[string]any{"event_type": envelope.EventType(msg)}})
			}
			return out, nil
		}
	}
}

// newBareService is a service without middleware.
func (s *stack) newBareService(name string) (*bus.Service, error) {
	svc, err := s.b.NewService(name)
	if err != nil {
		return nil, err
	}
	s.e.trackService(s.b.Config().ExchangeName, svc.QueueName())
	return svc, nil
}

// runService runs svc until stop is called; stop returns Run's error.
func runService(ctx context.Context, svc *bus.Service) (stop func() error, err error) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(rctx) }()
	select {
	case <-svc.Running():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("service %s did not start: %w", svc.Name(), err)
	case <-time.After(30 * time.Second):
		cancel()
		return nil, fmt.Errorf("service %s did not start within 30s", svc.Name())
	}
	return func() error {
		cancel()
		return <-done
	}, nil
}

// runCounted runs svc until its handlers counted all p's messages and, with
// a tap, until the tap counted as many acks (at most two minutes), and
// stops it. It returns the tap's rate, from the service's basic.consume to
// its last ack; without a tap, 0 once the service stopped, every ack sent.
func runCounted(ctx context.Context, svc *bus.Service, p *progress, tap *ackTap) (float64, error) {
	if tap != nil {
		tap.reset()
	}
	stop, err := runService(ctx, svc)
	if err != nil {
		return 0, err
	}
	werr := p.wait(ctx, 2*time.Minute)
	var rate float64
	if werr == nil && tap != nil {
		rate, werr = tap.rate(ctx, int(p.n), 2*time.Minute)
	}
	if err := stop(); err != nil && werr == nil {
		werr = err
	}
	return rate, werr
}

// progress counts handled messages; the rates come from the ack taps.
type progress struct {
	n     int64
	count atomic.Int64
	done  chan struct{}
}

func newProgress(n int) *progress { return &progress{n: int64(n), done: make(chan struct{})} }

func (p *progress) add() {
	if p.count.Add(1) == p.n {
		close(p.done)
	}
}

func (p *progress) wait(ctx context.Context, timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return fmt.Errorf("handled %d of %d messages within %s", p.count.Load(), p.n, timeout)
	}
}

// projectPublish1 is publish_confirmed_1: one goroutine builds each
// envelope (envelope.New, envelope.NewMessage) and publishes it with
// PublishAsync, keeping inflight Confirmations pending and waiting on the
// oldest, so that each publish is confirmed before it counts.
func (e *env) projectPublish1(ctx context.Context, pub *amqp.Publisher, d time.Duration) (float64, error) {
	pending := newRing[*amqp.Confirmation](e.o.inflight)
	confirmed := 0
	start := time.Now()
	deadline := start.Add(d)
	for i := 0; ; i++ {
		if i&63 == 0 && (time.Now().After(deadline) || ctx.Err() != nil) {
			break
		}
		env, err := e.tmpl.promptEnvelope()
		if err != nil {
			return 0, err
		}
		msg, err := envelope.NewMessage(env)
		if err != nil {
			return 0, err
		}
		c, err := pub.PublishAsync(ctx, thread.RoutingKeyPrompt, msg)
		if err != nil {
			return 0, err
		}
		if pending.full() {
			if err := pending.pop().Wait(ctx); err != nil {
				return 0, err
			}
			confirmed++
		}
		pending.push(c)
	}
	for !pending.empty() {
		if err := pending.pop().Wait(ctx); err != nil {
			return 0, err
		}
		confirmed++
	}
	return float64(confirmed) / time.Since(start).Seconds(), ctx.Err()
}

// ring is a fixed-size FIFO.
type ring[T any] struct {
	buf        []T
	head, size int
}

func newRing[T any](n int) *ring[T] { return &ring[T]{buf: make([]T, n)} }

func (r *ring[T]) full() bool  { return r.size == len(r.buf) }
func (r *ring[T]) empty() bool { return r.size == 0 }

func (r *ring[T]) push(v T) {
	r.buf[(r.head+r.size)%len(r.buf)] = v
	r.size++
}

func (r *ring[T]) pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return v
}

// projectPublish16 is publish_confirmed_16: 16 goroutines each call
// bus.Bus.Publish (build the message, publish, wait for the confirm) in a
// loop, sharing the bus's publisher.
func (e *env) projectPublish16(ctx context.Context, b *bus.Bus, d time.Duration) (float64, error) {
	return syncPublishers(ctx, 16, d, func() (func() error, func(), error) {
		publish := func() error {
			env, err := e.tmpl.promptEnvelope()
			if err != nil {
				return err
			}
			return b.Publish(ctx, env)
		}
		return publish, func() {}, nil
	})
}

// projectConsume is consume_full_stack: a bus.Service with the default
// middleware (or none, with bare) and a typed handler that decodes the
// prompt, on a queue prefilled with n distinct events, timed by tap (see
// runCounted).
func (e *env) projectConsume(ctx context.Context, s *stack, n int, tap *ackTap, bare bool) (float64, error) {
	var svc *bus.Service
	var err error
	if bare {
		svc, err = s.newBareService("consume")
	} else {
		svc, err = s.newService(ctx, "consume", true)
	}
	if err != nil {
		return 0, err
	}
	p := newProgress(n)
	if err := bus.Handle(svc, "bench_consume", thread.RoutingKeyPrompt, func(ctx context.Context, ev bus.Event[thread.Prompt]) error {
		if ev.Payload.Prompt == "" {
			return errors.New("empty prompt")
		}
		p.add()
		return nil
	}); err != nil {
		return 0, err
	}
	return runCounted(ctx, svc, p, tap)
}

// projectCommand is command_path: the command processor as
// cmd/command-processor runs it (package cqrs, the built-in commands with
// the reference EchoAgent) on a service with the default middleware, the
// bus's publisher recording each side effect's link once confirmed. Each
// agent.thread.prompt is validated, decoded, executed, its
// agent.thread.response published and confirmed, its link recorded, and
// the prompt acked.
func (e *env) projectCommand(ctx context.Context, s *stack, n int, tap *ackTap) (float64, error) {
	svc, err := s.newService(ctx, "command", false)
	if err != nil {
		return 0, err
	}
	p := newProgress(n)
	proc, err := cqrs.NewProcessor(s.b.Publisher(), cqrs.ProcessorConfig{
		Registry: s.registry,
		Source:   cqrs.DefaultSource("bbbench"),
		Logger:   e.logger,
		Decorators: []cqrs.Decorator{func(next cqrs.HandlerFunc) cqrs.HandlerFunc {
			return func(ctx context.Context, ex *cqrs.Execution) error {
				err := next(ctx, ex)
				if err == nil && len(ex.Published) > 0 {
					p.add()
				}
				return err
			}
		}},
	})
	if err != nil {
		return 0, err
	}
	if err := commands.Register(proc, commands.EchoAgent{}); err != nil {
		return 0, err
	}
	if err := proc.AddHandlersToService(svc); err != nil {
		return 0, err
	}
	return runCounted(ctx, svc, p, tap)
}

// publishPaced publishes total prompt envelopes at rate with PublishAsync,
// each stamped (with stamp) with the time just before it is built, and
// waits for every confirm, counting them in confirmed (when not nil).
func (e *env) publishPaced(ctx context.Context, pub *amqp.Publisher, rate, total int, stamp bool, confirmed *atomic.Int64) error {
	confirms := make(chan *amqp.Confirmation, 8192)
	confirmErr := make(chan error, 1)
	go func() {
		defer close(confirmErr)
		for c := range confirms {
			if err := c.Wait(ctx); err != nil {
				confirmErr <- err
				for range confirms {
				}
				return
			}
			if confirmed != nil {
				confirmed.Add(1)
			}
		}
	}()
	err := pace(ctx, rate, total, func() error {
		sent := time.Now().UnixNano()
		env, err := e.tmpl.promptEnvelope()
		if err != nil {
			return err
		}
		msg, err := envelope.NewMessage(env)
		if err != nil {
			return err
		}
		if stamp {
			msg.Metadata.Set("bench_sent", strconv.FormatInt(sent, 10))
		}
		c, err := pub.PublishAsync(ctx, thread.RoutingKeyPrompt, msg)
		if err != nil {
			return err
		}
		confirms <- c
		return nil
	})
	close(confirms)
	if cerr := <-confirmErr; err == nil {
		err = cerr
	}
	return err
}

// newProjectPublisher is an AMQPPublisher on its own connection, for the
// one-goroutine stream API.
func (e *env) newProjectPublisher(ctx context.Context, exchange string) (*amqp.Connection, *amqp.Publisher, error) {
	conn, err := amqp.Dial(ctx, amqp.ConnectionConfig{URL: e.rabbitURL, Name: "bbbench publisher", Logger: e.logger})
	if err != nil {
		return nil, nil, err
	}
	pub, err := amqp.NewPublisher(conn, amqp.PublisherConfig{Topology: amqp.Topology{Exchange: exchange},
		Channels: e.cfg.PublisherChannels, ConfirmTimeout: e.cfg.PublishTimeout, Logger: e.logger})
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, pub, nil
}
