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

// PublisherConfig configures an Publisher.
type PublisherConfig struct {
	// Topology names the exchange to publish to. Optional; default envelope.DefaultExchange.
	Topology Topology
	// Channels is how many AMQP channels publishes are spread over. Each
	// channel pipelines any number of publishes and matches their confirms,
	// so a few suffice for any number of goroutines. Optional; default 4.
	Channels int
	// ConfirmTimeout bounds how long a publish waits for a channel (during a
	// reconnect) and then for the broker's confirm. Optional; default 10s.
	ConfirmTimeout time.Duration
	// UnroutableIsError makes a publish that reached no queue fail with
	// transport.ErrUnroutable. Optional; by default it succeeds, and the event is
	// logged as a warning and counted (Stats), because in publish/subscribe
	// a fact nobody listens to yet is normal.
	UnroutableIsError bool
	// ToQueues publishes through the default exchange: the topic is the name
	// of the queue a message goes to (a poison or delay queue), which must
	// exist; a missing queue makes the publish unroutable.
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

// Publisher publishes with publisher confirms: a publish returns only
// once the broker has confirmed it (or with an error), with mandatory set so
// that an unroutable message is reported, never lost in silence. It is safe
// for concurrent use, and it pipelines: many publishes are in flight on each
// channel at once, each confirmed on its own, so throughput is bound by the
// broker, not by round trips. The Watermill topic is the routing key.
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
	id         string
	routingKey string
	done       chan struct{}
	err        error
}

// Done is closed once the publish is confirmed or failed.
func (c *Confirmation) Done() <-chan struct{} { return c.done }

// Err is the outcome once Done is closed: nil when confirmed.
func (c *Confirmation) Err() error { return c.err }

// Wait blocks until the publish is settled or ctx ends.
func (c *Confirmation) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("cannot confirm %s: %w", c.id, ctx.Err())
	}
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
	slot := p.slots[p.next.Add(1)%uint64(len(p.slots))]
	pc := slot.live()
	if pc == nil {
		// Only opening a channel can wait (for a reconnect); a timer per
		// publish would cost more than the rest of PublishAsync's own work.
		octx, cancel := context.WithTimeout(ctx, p.cfg.ConfirmTimeout)
		defer cancel()
		var err error
		if pc, err = slot.channel(octx); err != nil {
			p.failed.Add(1)
			return nil, fmt.Errorf("cannot publish %s: %w", msg.UUID, err)
		}
	}
	exchange := p.cfg.Topology.exchange()
	if p.cfg.ToQueues {
		exchange = ""
	}
	c, err := pc.publish(ctx, exchange, topic, pub)
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
	p  *Publisher
	mu sync.Mutex
	pc *pubChannel
}

// live returns the slot's channel if it is open, without waiting.
func (s *pubSlot) live() *pubChannel {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc != nil && !s.pc.isDead() {
		return s.pc
	}
	return nil
}

func (s *pubSlot) channel(ctx context.Context) (*pubChannel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc != nil && !s.pc.isDead() {
		return s.pc, nil
	}
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
	if s.pc != nil {
		_ = s.pc.ch.Close()
	}
}

// pubChannel is a confirm-mode channel with its confirm loop. Returns and
// confirms are read by one goroutine: RabbitMQ sends basic.return before the
// basic.ack of the same message, and the client hands both over in that
// order, so the loop always knows a message was returned before it sees its
// confirm. (Watching returns in another goroutine races with the confirm.)
type pubChannel struct {
	ch *amqp091.Channel
	p  *Publisher

	publishMu sync.Mutex // a sequence number and its publish are one step

	mu      sync.Mutex
	pending map[uint64]*Confirmation
	dead    bool
	deadErr error
}

func newPubChannel(ch *amqp091.Channel, p *Publisher) *pubChannel {
	pc := &pubChannel{ch: ch, p: p, pending: map[uint64]*Confirmation{}}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1024))
	returns := ch.NotifyReturn(make(chan amqp091.Return))
	closes := ch.NotifyClose(make(chan *amqp091.Error, 1))
	go pc.loop(confirms, returns, closes)
	return pc
}

func (pc *pubChannel) isDead() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.dead
}

func (pc *pubChannel) publish(ctx context.Context, exchange, key string, pub amqp091.Publishing) (*Confirmation, error) {
	c := &Confirmation{id: pub.MessageId, routingKey: key, done: make(chan struct{})}
	pc.publishMu.Lock()
	defer pc.publishMu.Unlock()
	seq := pc.ch.GetNextPublishSeqNo()
	pc.mu.Lock()
	if pc.dead {
		err := pc.deadErr
		pc.mu.Unlock()
		return nil, err
	}
	pc.pending[seq] = c
	pc.mu.Unlock()
	if err := pc.ch.PublishWithContext(ctx, exchange, key, true, false, pub); err != nil {
		pc.mu.Lock()
		delete(pc.pending, seq)
		pc.mu.Unlock()
		return nil, err
	}
	return c, nil
}

func (pc *pubChannel) loop(confirms <-chan amqp091.Confirmation, returns <-chan amqp091.Return, closes <-chan *amqp091.Error) {
	returned := map[string]int{}
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			returned[r.MessageId]++
		case conf, ok := <-confirms:
			if !ok {
				pc.fail(<-closes)
				return
			}
			pc.mu.Lock()
			c := pc.pending[conf.DeliveryTag]
			delete(pc.pending, conf.DeliveryTag)
			pc.mu.Unlock()
			if c == nil {
				continue
			}
			switch {
			case !conf.Ack:
				pc.p.failed.Add(1)
				c.finish(fmt.Errorf("cannot publish %s to %q: %w (nack)", c.id, c.routingKey, transport.ErrNotConfirmed))
			case returned[c.id] > 0:
				if returned[c.id]--; returned[c.id] == 0 {
					delete(returned, c.id)
				}
				pc.p.unroutable.Add(1)
				if pc.p.cfg.UnroutableIsError {
					c.finish(fmt.Errorf("cannot publish %s to %q: %w", c.id, c.routingKey, transport.ErrUnroutable))
				} else {
					pc.p.confirmed.Add(1)
					pc.p.cfg.Logger.Warn("unroutable: no queue is bound to the routing key; the broker dropped the event",
						slog.String("routing_key", c.routingKey), slog.String("event_id", c.id))
					c.finish(nil)
				}
			default:
				pc.p.confirmed.Add(1)
				c.finish(nil)
			}
		}
	}
}

// fail settles every publish still waiting on a channel that closed.
func (pc *pubChannel) fail(reason *amqp091.Error) {
	err := fmt.Errorf("channel closed before the confirm: %w", transport.ErrNotConfirmed)
	if reason != nil {
		err = fmt.Errorf("channel closed before the confirm (%s): %w", reason.Reason, transport.ErrNotConfirmed)
	}
	pc.mu.Lock()
	pc.dead, pc.deadErr = true, err
	pending := pc.pending
	pc.pending = nil
	pc.mu.Unlock()
	for _, c := range pending {
		pc.p.failed.Add(1)
		c.finish(fmt.Errorf("cannot publish %s: %w", c.id, err))
	}
}

var _ message.Publisher = (*Publisher)(nil)
