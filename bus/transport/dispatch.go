package transport

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/topic"
)

// Delivery is one message taken from a queue, with the means to settle it.
type Delivery struct {
	Msg        *message.Message
	Body       []byte // the body as it arrived, for parking it unchanged
	RoutingKey string // envelope.MetaRoutingKey overrides it
	Ack        func()
	Nack       func() // requeue
}

// Source yields the deliveries of one queue until the stop channel it was
// opened with is closed.
type Source interface {
	// Fetch blocks for the next delivery; false once stop is closed or the
	// source has ended.
	Fetch() (Delivery, bool)
	// Close releases the source after every delivery has been settled.
	Close()
}

// Subscriber is the part of a subscriber both transports share (see the
// package doc); it keeps one consumer per queue, created on first Subscribe.
type Subscriber struct {
	cfg       SubscriberConfig
	declare   func(ctx context.Context, queue string, pattern string) error
	newSource func(queue string, stop <-chan struct{}) (Source, error)

	mu        sync.Mutex
	consumers map[string]*queueConsumer
	closed    bool
}

// NewSubscriber returns a subscriber that calls declare in each Subscribe
// (to declare the queue and bind it to the pattern) and newSource to start
// consuming a queue once every expected pattern is subscribed.
func NewSubscriber(cfg SubscriberConfig, declare func(ctx context.Context, queue, pattern string) error, newSource func(queue string, stop <-chan struct{}) (Source, error)) *Subscriber {
	cfg.setDefaults()
	return &Subscriber{cfg: cfg, declare: declare, newSource: newSource, consumers: map[string]*queueConsumer{}}
}

// Config is the configuration with its defaults applied.
func (s *Subscriber) Config() SubscriberConfig { return s.cfg }

// Subscribe declares the queue of the pattern name, binds it, and returns
// the messages of that queue whose routing key matches the pattern.
func (s *Subscriber) Subscribe(ctx context.Context, name string) (<-chan *message.Message, error) {
	pattern, err := topic.Compile(name)
	if err != nil {
		return nil, err
	}
	queue := s.cfg.QueueName(name)
	if err := s.declare(ctx, queue, name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	qc := s.consumers[queue]
	if qc == nil {
		qc = &queueConsumer{s: s, queue: queue, stop: make(chan struct{}), drainExpired: make(chan struct{})}
		s.consumers[queue] = qc
	}
	s.mu.Unlock()
	sub, err := qc.add(ctx, pattern)
	if err != nil {
		return nil, err
	}
	return sub.out, nil
}

// retire stops a consumer whose subscriptions have all ended.
func (s *Subscriber) retire(qc *queueConsumer) {
	s.mu.Lock()
	if s.consumers[qc.queue] == qc {
		delete(s.consumers, qc.queue)
	}
	s.mu.Unlock()
	go qc.close()
}

// Close drains in-flight messages (see SubscriberConfig.DrainTimeout), then
// ends every subscription. It never fails; it returns an error to implement
// message.Subscriber.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	consumers := s.consumers
	s.consumers = map[string]*queueConsumer{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, qc := range consumers {
		wg.Go(qc.close)
	}
	wg.Wait()
	return nil
}

// subscription is one Subscribe call: the messages of the queue whose
// routing key matches pattern go to out.
type subscription struct {
	pattern topic.Pattern
	handler string // the router handler consuming it, if known
	ctx     context.Context
	out     chan *message.Message
	done    chan struct{}  // closed when the subscription ends: no new messages
	abandon chan struct{}  // closed when its in-flight messages are given up
	sending sync.WaitGroup // messages being handed to out or handled
}

// queueConsumer runs the workers of one queue and fans each delivery out as
// the package doc says; a copy that could not be handed over counts as a nack.
type queueConsumer struct {
	s     *Subscriber
	queue string

	mu   sync.RWMutex
	subs []*subscription
	src  Source // set once every expected pattern has a subscription

	stop         chan struct{} // no new deliveries
	drainExpired chan struct{} // in-flight deliveries are abandoned (requeued)
	workersDone  sync.WaitGroup
	closeOnce    sync.Once
}

// add registers a subscription and starts consuming once every expected
// pattern has a subscription, so that no delivery is taken from a shared
// queue before the handler it belongs to is listening.
func (qc *queueConsumer) add(ctx context.Context, pattern topic.Pattern) (*subscription, error) {
	handler, _ := ctx.Value(handlerKey{}).(string)
	sub := &subscription{pattern: pattern, handler: handler, ctx: ctx,
		out: make(chan *message.Message), done: make(chan struct{}), abandon: make(chan struct{})}
	qc.mu.Lock()
	defer qc.mu.Unlock()
	select {
	case <-qc.stop:
		return nil, ErrClosed
	default:
	}
	qc.subs = append(qc.subs, sub)
	if qc.src == nil && qc.ready() {
		src, err := qc.s.newSource(qc.queue, qc.stop)
		if err != nil {
			qc.subs = qc.subs[:len(qc.subs)-1]
			return nil, err
		}
		qc.src = src
		for range qc.s.cfg.Consumers {
			qc.workersDone.Go(qc.work)
		}
	}
	go func() {
		select {
		case <-ctx.Done():
			qc.remove(sub)
		case <-qc.stop:
			// close drains and then ends every subscription.
		}
	}()
	return sub, nil
}

// ready reports whether each of SubscriberConfig.Patterns has a subscription.
func (qc *queueConsumer) ready() bool {
	for _, p := range qc.s.cfg.Patterns {
		if !slices.ContainsFunc(qc.subs, func(s *subscription) bool { return s.pattern.String() == p }) {
			return false
		}
	}
	return true
}

// remove ends one subscription after the workers stop handing it messages.
// When it was the last one the consumer stops, so that no delivery is taken
// from the queue with nobody to handle it.
func (qc *queueConsumer) remove(sub *subscription) {
	qc.mu.Lock()
	i := slices.Index(qc.subs, sub)
	if i < 0 {
		qc.mu.Unlock()
		return // close already ended it
	}
	qc.subs = slices.Delete(qc.subs, i, i+1)
	empty := len(qc.subs) == 0
	qc.mu.Unlock()
	qc.end(sub)
	if empty {
		qc.s.retire(qc)
	}
}

func (qc *queueConsumer) work() {
	for {
		d, ok := qc.src.Fetch()
		if !ok {
			return
		}
		if key := d.Msg.Metadata.Get(envelope.MetaRoutingKey); key != "" {
			d.RoutingKey = key
		}
		if qc.dispatch(d) {
			d.Ack()
		} else {
			d.Nack()
		}
	}
}

// dispatch hands a delivery to every subscription it is for and reports
// whether all of them acked it.
func (qc *queueConsumer) dispatch(d Delivery) bool {
	targets, anyone := qc.targets(d)
	if !anyone {
		// Every subscription just ended: leave the message to the next consumer.
		return false
	}
	if len(targets) == 0 {
		// A stale binding (a handler removed in a later release): nobody here
		// handles the key. Ack, as the Python command manager acks what it
		// does not handle, rather than requeue it forever.
		qc.s.cfg.Logger.Warn("no handler for routing key; acking",
			slog.String("queue", qc.queue), slog.String("routing_key", d.RoutingKey), slog.String("event_id", d.Msg.UUID))
		return true
	}
	ok := true
	copies := make([]*message.Message, 0, len(targets))
	for _, s := range targets {
		m := d.Msg
		if len(targets) > 1 {
			m = d.Msg.Copy()
		}
		// The message's context ends when the delivery is settled, as with
		// watermill-amqp, so work a handler started for it does not outlive
		// it; it does not end when the subscription's context does, so that
		// a shutdown lets in-flight handlers finish.
		ctx, cancel := context.WithCancel(context.WithoutCancel(s.ctx))
		defer cancel()
		if d.Body != nil {
			ctx = envelope.WithOriginalBody(ctx, d.Body)
		}
		m.SetContext(ctx)
		if qc.s.cfg.Prepare != nil {
			qc.s.cfg.Prepare(m, s.handler)
		}
		// If s ends or intake stops first, nothing is left to drain, and
		// the delivery is requeued at once.
		select {
		case s.out <- m:
		case <-s.done:
			ok = false
		case <-qc.stop:
			ok = false
		}
		if !ok {
			break
		}
		copies = append(copies, m)
	}
	for _, s := range targets[len(copies):] {
		s.sending.Done() // never handed over
	}
	for i, m := range copies {
		select {
		case <-m.Acked():
		case <-m.Nacked():
			ok = false
		case <-targets[i].abandon:
			ok = false
		case <-qc.drainExpired:
			ok = false
		}
		targets[i].sending.Done()
	}
	return ok
}

// targets lists the subscriptions whose pattern matches a delivery's
// routing key, counting the delivery in each one's sending. A redelivery
// addressed to one handler goes to it alone, so that the others do not run
// twice. anyone is false when the queue has no subscription left.
func (qc *queueConsumer) targets(d Delivery) (targets []*subscription, anyone bool) {
	handler := d.Msg.Metadata.Get(envelope.MetaTargetHandler)
	var addressed []*subscription
	qc.mu.RLock()
	defer qc.mu.RUnlock()
	for _, s := range qc.subs {
		if s.pattern.Match(d.RoutingKey) {
			targets = append(targets, s)
			if handler != "" && s.handler == handler {
				addressed = append(addressed, s)
			}
		}
	}
	if len(addressed) > 0 {
		targets = addressed
	}
	for _, s := range targets {
		s.sending.Add(1)
	}
	return targets, len(qc.subs) > 0
}

type handlerKey struct{}

// WithHandlerName marks a Subscribe context with the router handler that
// will consume the subscription, so that redeliveries addressed to one
// handler (envelope.MetaTargetHandler) reach only it.
func WithHandlerName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, handlerKey{}, name)
}

// end stops handing sub messages, waits for those its handlers still hold,
// up to the drain timeout, then closes its channel.
func (qc *queueConsumer) end(sub *subscription) {
	close(sub.done)
	if !waitFor(&sub.sending, qc.s.cfg.DrainTimeout) {
		close(sub.abandon)
		sub.sending.Wait()
	}
	close(sub.out)
}

// close stops intake, waits up to the drain timeout for in-flight deliveries
// to be settled by their handlers, requeues what is left, then ends every
// subscription, so that a SIGTERM loses no work.
func (qc *queueConsumer) close() {
	qc.closeOnce.Do(func() {
		// Under mu, so that add either sees stop closed or has started its
		// workers already.
		qc.mu.Lock()
		close(qc.stop)
		qc.mu.Unlock()
		if !waitFor(&qc.workersDone, qc.s.cfg.DrainTimeout) {
			qc.s.cfg.Logger.Warn("drain timeout: requeueing deliveries still in flight",
				slog.String("queue", qc.queue), slog.Duration("drain_timeout", qc.s.cfg.DrainTimeout))
			close(qc.drainExpired)
			qc.workersDone.Wait()
		}
		if qc.src != nil {
			qc.src.Close()
		}
		qc.mu.Lock()
		subs := qc.subs
		qc.subs = nil
		qc.mu.Unlock()
		for _, s := range subs {
			qc.end(s)
		}
	})
}

// waitFor waits for wg up to timeout and reports whether it finished.
func waitFor(wg *sync.WaitGroup, timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// SubscriberConfig configures a subscriber on either transport.
type SubscriberConfig struct {
	// QueueName maps a Watermill topic (a binding pattern) to the queue it is
	// consumed from. Optional; by default the topic itself. A service maps
	// every topic to its service queue.
	QueueName func(topic string) string
	// Patterns lists every pattern that will be subscribed on a shared queue.
	// Optional: when set, consumption starts only once each has a
	// subscription, so no delivery is taken before its handler listens.
	Patterns []string
	// Consumers is how many deliveries of one queue are handled at once.
	// Optional; default 10.
	Consumers int
	// Prefetch is the AMQP QoS prefetch count of a queue's channel. Optional;
	// default Consumers. Ignored by the embedded transport.
	Prefetch int
	// DrainTimeout bounds how long Close waits for in-flight messages to be
	// acked or nacked before it requeues them. Optional; default 30s.
	DrainTimeout time.Duration
	// Logger. Optional; default logs nothing.
	Logger *slog.Logger
	// Prepare, when set, is called with each message and the name of the
	// handler it is for (empty when the subscription has none) just before
	// the message is handed over; it may replace the message's context. It
	// lets a middleware start work its handler chain will wait on, so that
	// the work overlaps the hand-offs to the handler: Dedup starts its
	// store lookup there. Optional.
	Prepare func(msg *message.Message, handler string)
}

func (c *SubscriberConfig) setDefaults() {
	if c.QueueName == nil {
		c.QueueName = func(topic string) string { return topic }
	}
	if c.Consumers <= 0 {
		c.Consumers = 10
	}
	if c.Prefetch <= 0 {
		c.Prefetch = c.Consumers
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// PublisherStats counts what a publisher did since it started.
type PublisherStats struct {
	Published, Confirmed, Unroutable, Failed int64
}
