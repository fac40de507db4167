package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Topology names the exchange to publish to. Optional; default envelope.DefaultExchange.
	Topology Topology
	// Channels is how many AMQP channels publishes are spread over; each
	// pipelines, so a few suffice. Optional; default 4.
	Channels int
	// ConfirmTimeout bounds how long a publish waits for a channel (during a
	// reconnect) and then for the broker's confirm. Optional; default 10s.
	ConfirmTimeout time.Duration
	// UnroutableIsError makes a publish that reached no queue fail with
	// transport.ErrUnroutable. Optional; by default it is logged and counted
	// (Stats): in publish/subscribe a fact nobody listens to yet is normal.
	UnroutableIsError bool
	// ToQueues publishes through the default exchange: the topic is the name
	// of the queue a message goes to, which must exist. Optional.
	ToQueues bool
	// Marshaler writes messages as AMQP publishings. Optional; default envelope.Codec{}.
	Marshaler wamqp.Marshaler
	// Logger. Optional; default logs nothing.
	Logger *slog.Logger
}

func (c *PublisherConfig) setDefaults() {
	if c.Channels <= 0 {
		c.Channels = 4
	}
	if c.ConfirmTimeout <= 0 {
		c.ConfirmTimeout = 10 * time.Second
	}
	if c.Marshaler == nil {
		c.Marshaler = envelope.Codec{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Publisher publishes with confirms and mandatory set, as the package doc
// says. It is safe for concurrent use. The Watermill topic is the routing key.
type Publisher struct {
	conn  *Connection
	cfg   PublisherConfig
	slots []*pubSlot
	next  atomic.Uint64

	published, confirmed, unroutable, failed atomic.Int64
	closed                                   atomic.Bool
}

// NewPublisher returns a publisher on conn; channels open on first use.
func NewPublisher(conn *Connection, cfg PublisherConfig) (*Publisher, error) {
	cfg.setDefaults()
	if err := cfg.Topology.Validate(); err != nil {
		return nil, err
	}
	p := &Publisher{conn: conn, cfg: cfg}
	for range cfg.Channels {
		p.slots = append(p.slots, &pubSlot{p: p})
	}
	return p, nil
}

// Confirmation is a publish in flight; Wait blocks until the broker settled it.
type Confirmation struct {
	dc         *amqp091.DeferredConfirmation
	pc         *pubChannel
	sent       time.Time
	id         string
	routingKey string
	done       chan struct{}
	err        error
}

// Wait blocks until the publish is settled or ctx ends. A confirm that
// has not come within ConfirmTimeout will not come: the broker lost track
// of the publish (RabbitMQ 3.10 can, for a quorum queue whose leader died),
// so Wait closes the channel, which fails every publish still waiting on
// it, and the next publish opens a fresh one.
func (c *Confirmation) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		if time.Since(c.sent) >= c.pc.p.cfg.ConfirmTimeout {
			c.abandon()
		}
		return fmt.Errorf("cannot confirm %s: %w", c.id, ctx.Err())
	}
}

// abandon closes the channel c was published on; see Wait. In the
// background: a close waits for the broker's answer.
func (c *Confirmation) abandon() {
	if c.pc.ch.IsClosed() {
		return
	}
	c.pc.p.cfg.Logger.Warn("no confirm within the confirm timeout: replacing the channel, its pending publishes fail",
		slog.String("event_id", c.id), slog.Duration("timeout", c.pc.p.cfg.ConfirmTimeout))
	go func() { _ = c.pc.ch.Close() }()
}

func (c *Confirmation) finish(err error) {
	c.err = err
	close(c.done)
}

// Publish publishes msgs to the routing key topic and waits for all their
// confirms. It implements message.Publisher.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(msgs[0].Context(), p.cfg.ConfirmTimeout)
	defer cancel()
	confs := make([]*Confirmation, 0, len(msgs))
	var errs []error
	for _, m := range msgs {
		c, err := p.PublishAsync(ctx, topic, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		confs = append(confs, c)
	}
	for _, c := range confs {
		if err := c.Wait(ctx); err != nil {
			if ctx.Err() != nil && msgs[0].Context().Err() == nil {
				c.abandon() // ConfirmTimeout ran out, not the caller's context
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// PublishAsync sends one message and returns without waiting for its
// confirm, so that one goroutine can keep many publishes in flight. Each is
// still confirmed: wait on the Confirmation before treating it as sent.
func (p *Publisher) PublishAsync(ctx context.Context, topic string, msg *message.Message) (*Confirmation, error) {
	if p.closed.Load() {
		return nil, transport.ErrClosed
	}
	pub, err := p.cfg.Marshaler.Marshal(msg)
	if err != nil {
		return nil, err
	}
	exchange := p.cfg.Topology.exchange()
	if p.cfg.ToQueues {
		exchange = ""
	}
	slot := p.slots[p.next.Add(1)%uint64(len(p.slots))]
	pc, err := slot.channel(ctx)
	var c *Confirmation
	if err == nil {
		c, err = pc.publish(ctx, exchange, topic, pub)
	}
	if err != nil {
		p.failed.Add(1)
		return nil, fmt.Errorf("cannot publish %s: %w", msg.UUID, err)
	}
	p.published.Add(1)
	return c, nil
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() transport.PublisherStats {
	return transport.PublisherStats{Published: p.published.Load(), Confirmed: p.confirmed.Load(), Unroutable: p.unroutable.Load(), Failed: p.failed.Load()}
}

// Close waits for nothing: publishes in flight fail, their callers see it.
func (p *Publisher) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	for _, s := range p.slots {
		s.close()
	}
	return nil
}

// pubSlot holds one channel of the pool and replaces it when it dies.
type pubSlot struct {
	p      *Publisher
	mu     sync.Mutex
	pc     *pubChannel
	closed bool
}

// channel returns the slot's channel, opening one (waiting at most
// ConfirmTimeout for a reconnect) if it has none or its channel died.
func (s *pubSlot) channel(ctx context.Context) (*pubChannel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, transport.ErrClosed
	}
	if s.pc != nil && !s.pc.ch.IsClosed() {
		return s.pc, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.p.cfg.ConfirmTimeout)
	defer cancel()
	ch, err := s.p.conn.Channel(ctx)
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("cannot enable publisher confirms: %w", err)
	}
	// Declared on every new channel so that publishing after a broker
	// restart, or before any consumer ran, never hits a missing exchange.
	if !s.p.cfg.ToQueues {
		if err := s.p.cfg.Topology.DeclareExchange(ch); err != nil {
			_ = ch.Close()
			return nil, err
		}
	}
	s.pc = newPubChannel(ch, s.p)
	return s.pc, nil
}

func (s *pubSlot) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.pc != nil {
		_ = s.pc.ch.Close()
	}
}

// pubChannel is one confirm-mode channel of the pool. amqp091 matches the
// broker's confirms to publishes (DeferredConfirmation); the channel's
// settle goroutine turns each confirmation into its publish's outcome, and
// is the only reader of the channel's returns.
//
// That is what ties a return to its confirmation. RabbitMQ sends a
// message's basic.return before its basic.ack, and amqp091 hands each
// return to the listener before it reads the next frame: the returns
// channel is unbuffered, so the hand-over completes only once settle has
// taken the return. When settle then sees a confirmation done, the return
// of that message, if there was one, is already in its hands. (amqp091
// gives up on a listener that takes no return for 5s; settle waits on
// returns whenever it waits.) Returns carry no delivery tag, so they are
// matched by message id, which envelope.Codec sets to the event id.
type pubChannel struct {
	ch *amqp091.Channel
	p  *Publisher

	// publishMu makes a publish and its joining the queue one step; closed,
	// set by settle once the channel closed, means nothing joins it again.
	publishMu sync.Mutex
	closed    bool

	mu    sync.Mutex
	queue []*Confirmation // published, not yet taken by settle
	wake  chan struct{}   // signals settle that the queue grew
}

func newPubChannel(ch *amqp091.Channel, p *Publisher) *pubChannel {
	pc := &pubChannel{ch: ch, p: p, wake: make(chan struct{}, 1)}
	go pc.settle(ch.NotifyReturn(make(chan amqp091.Return)))
	return pc
}

func (pc *pubChannel) publish(ctx context.Context, exchange, key string, pub amqp091.Publishing) (*Confirmation, error) {
	pc.publishMu.Lock()
	defer pc.publishMu.Unlock()
	if pc.closed {
		return nil, amqp091.ErrClosed
	}
	dc, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, pub)
	if err != nil {
		return nil, err
	}
	c := &Confirmation{dc: dc, pc: pc, sent: time.Now(), id: pub.MessageId, routingKey: key, done: make(chan struct{})}
	pc.mu.Lock()
	pc.queue = append(pc.queue, c)
	pc.mu.Unlock()
	select {
	case pc.wake <- struct{}{}:
	default:
	}
	return c, nil
}

// settle settles the channel's publishes, in the order they were sent,
// until the channel has closed and every publish on it is settled (amqp091
// nacks what the broker had not confirmed when the channel closed).
func (pc *pubChannel) settle(returns <-chan amqp091.Return) {
	// Returns not yet matched to a confirmation, by message id. Two
	// publishes with one id in flight at once may swap their outcomes.
	returned := map[string]int{}
	receive := func(r amqp091.Return, ok bool) {
		if !ok {
			returns = nil // the channel closed
			return
		}
		returned[r.MessageId]++
	}
	for closed := false; ; {
		pc.mu.Lock()
		batch := pc.queue
		pc.queue = nil
		pc.mu.Unlock()
		for _, c := range batch {
			for waiting := true; waiting; {
				select {
				case <-c.dc.Done():
					waiting = false
				case r, ok := <-returns:
					receive(r, ok)
				}
			}
			wasReturned := returned[c.id] > 0
			if wasReturned {
				if returned[c.id]--; returned[c.id] == 0 {
					delete(returned, c.id)
				}
			}
			pc.finish(c, wasReturned)
		}
		switch {
		case len(batch) > 0:
		case closed:
			return
		case returns == nil:
			// The channel closed. A publish still in progress joins the
			// queue before settle gets publishMu; the next round settles it.
			pc.publishMu.Lock()
			pc.closed = true
			pc.publishMu.Unlock()
			closed = true
		default:
			select {
			case r, ok := <-returns:
				receive(r, ok)
			case <-pc.wake:
			}
		}
	}
}

// finish settles c once the broker confirmed, nacked or returned it, or
// its channel closed first.
func (pc *pubChannel) finish(c *Confirmation, returned bool) {
	p := pc.p
	switch {
	case !c.dc.Acked():
		p.failed.Add(1)
		why := "the broker refused it (nack)"
		if pc.ch.IsClosed() {
			why = "the channel closed before the confirm"
		}
		c.finish(fmt.Errorf("cannot publish %s to %q: %s: %w", c.id, c.routingKey, why, transport.ErrNotConfirmed))
	case returned:
		p.unroutable.Add(1)
		if p.cfg.UnroutableIsError {
			c.finish(fmt.Errorf("cannot publish %s to %q: %w", c.id, c.routingKey, transport.ErrUnroutable))
			return
		}
		p.confirmed.Add(1)
		p.cfg.Logger.Warn("unroutable: no queue is bound to the routing key; the broker dropped the event",
			slog.String("routing_key", c.routingKey), slog.String("event_id", c.id))
		c.finish(nil)
	default:
		p.confirmed.Add(1)
		c.finish(nil)
	}
}

var _ message.Publisher = (*Publisher)(nil)
