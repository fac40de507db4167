package transport

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/topic"
)

// Delivery is one message taken from a queue, with the means to settle it.
// Both transports produce deliveries; everything above them (dispatch to
// subscriptions, ack aggregation, drain) is shared, so the embedded transport
// behaves as RabbitMQ does by construction.
type Delivery struct {
	Msg        *message.Message
	Body       []byte // the body as it arrived, for parking it unchanged
	RoutingKey string
	Ack        func()
	Nack       func() // requeue
}

// Source yields the deliveries of one queue.
type Source interface {
	// Fetch blocks for the next delivery; false once stop is closed or the
	// source has ended.
	Fetch(stop <-chan struct{}) (Delivery, bool)
	// Close releases the source after every delivery has been settled.
	Close()
}

// subscription is one Subscribe call: the messages of the queue whose
// routing key matches pattern go to out.
type subscription struct {
	pattern topic.Pattern
	handler string // the router handler consuming it, if known
	out     chan *message.Message
	ctx     context.Context
	done    chan struct{} // closed when the subscription ends: no new messages
	abandon chan struct{} // closed when its in-flight messages are given up
	sending sync.WaitGroup
}

// queueConsumer runs the workers of one queue and fans each delivery out to
// every subscription whose pattern matches its routing key. A delivery is
// acked when every copy was acked, and requeued when any copy was nacked or
// could not be handed over.
type queueConsumer struct {
	queue        string
	workers      int
	drainTimeout time.Duration
	logger       *slog.Logger
	newSource    func() (Source, error)
	onEmpty      func(*queueConsumer) // the last subscription ended

	mu       sync.RWMutex
	subs     []*subscription
	expected map[string]bool // patterns that must be subscribed before consuming
	started  bool
	src      Source

	stop         chan struct{} // no new deliveries
	drainExpired chan struct{} // in-flight deliveries are abandoned (requeued)
	workersDone  sync.WaitGroup
	closeOnce    sync.Once

	unhandled atomic.Int64
}

func newQueueConsumer(queue string, workers int, drain time.Duration, patterns []string, logger *slog.Logger, newSource func() (Source, error)) *queueConsumer {
	qc := &queueConsumer{
		queue: queue, workers: workers, drainTimeout: drain, logger: logger, newSource: newSource,
		stop: make(chan struct{}), drainExpired: make(chan struct{}),
	}
	if len(patterns) > 0 {
		qc.expected = make(map[string]bool, len(patterns))
		for _, p := range patterns {
			qc.expected[p] = true
		}
	}
	return qc
}

// add registers a subscription and starts consuming once every expected
// pattern has a subscription, so that no delivery is taken from a shared
// queue before the handler it belongs to is listening.
func (qc *queueConsumer) add(ctx context.Context, pattern topic.Pattern) (*subscription, error) {
	sub := &subscription{pattern: pattern, handler: handlerOfSubscription(ctx), out: make(chan *message.Message), ctx: ctx, done: make(chan struct{}), abandon: make(chan struct{})}
	qc.mu.Lock()
	defer qc.mu.Unlock()
	select {
	case <-qc.stop:
		return nil, ErrClosed
	default:
	}
	qc.subs = append(qc.subs, sub)
	go func() {
		select {
		case <-ctx.Done():
		case <-qc.stop:
			// Close drains and then ends every subscription.
			return
		}
		qc.remove(sub)
	}()
	if qc.started || !qc.ready() {
		return sub, nil
	}
	src, err := qc.newSource()
	if err != nil {
		qc.subs = qc.subs[:len(qc.subs)-1]
		return nil, err
	}
	qc.src, qc.started = src, true
	for range qc.workers {
		qc.workersDone.Add(1)
		go qc.work()
	}
	return sub, nil
}

func (qc *queueConsumer) ready() bool {
	for p := range qc.expected {
		found := false
		for _, s := range qc.subs {
			if s.pattern.String() == p {
				found = true
				break
			}
		}
		if !found {
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
	found := false
	for i, s := range qc.subs {
		if s == sub {
			qc.subs = append(qc.subs[:i:i], qc.subs[i+1:]...)
			found = true
			break
		}
	}
	empty := len(qc.subs) == 0
	qc.mu.Unlock()
	if !found {
		return // close already ended it
	}
	close(sub.done)
	qc.drain(sub)
	if empty && qc.onEmpty != nil {
		qc.onEmpty(qc)
	}
}

func (qc *queueConsumer) work() {
	defer qc.workersDone.Done()
	for {
		d, ok := qc.src.Fetch(qc.stop)
		if !ok {
			return
		}
		if qc.dispatch(d) {
			d.Ack()
		} else {
			d.Nack()
		}
	}
}

// dispatch hands a delivery to every matching subscription and reports
// whether all of them acked it.
func (qc *queueConsumer) dispatch(d Delivery) bool {
	qc.mu.RLock()
	var targets []*subscription
	// A redelivery for one handler (a retry, a replay) goes to that handler
	// alone when it is still here, so the others do not run twice.
	target := d.Msg.Metadata.Get(envelope.MetaTargetHandler)
	if target != "" && !qc.hasHandler(target, d.RoutingKey) {
		target = ""
	}
	for _, s := range qc.subs {
		if s.pattern.Match(d.RoutingKey) && (target == "" || s.handler == target) {
			s.sending.Add(1)
			targets = append(targets, s)
		}
	}
	nSubs := len(qc.subs)
	qc.mu.RUnlock()
	if nSubs == 0 {
		// Every subscription just ended: leave the message to the next consumer.
		return false
	}
	if len(targets) == 0 {
		// A stale binding (a handler removed in a later release): nobody here
		// handles the key. Ack, as the Python command manager acks what it
		// does not handle, and count it, rather than requeue it forever.
		qc.unhandled.Add(1)
		qc.logger.Warn("no handler for routing key; acking",
			slog.String("queue", qc.queue), slog.String("routing_key", d.RoutingKey), slog.String("event_id", d.Msg.UUID))
		return true
	}
	ok := true
	copies := make([]*message.Message, 0, len(targets))
	for i, s := range targets {
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
		select {
		case s.out <- m:
			copies = append(copies, m)
		case <-s.done:
			ok = false
		case <-qc.stop:
			// Not handed over yet: nothing to drain, requeue it now.
			ok = false
		}
		if !ok {
			for _, rest := range targets[i:] {
				rest.sending.Done()
			}
			targets = targets[:i]
			break
		}
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

func (qc *queueConsumer) hasHandler(name, key string) bool {
	for _, s := range qc.subs {
		if s.handler == name && s.pattern.Match(key) {
			return true
		}
	}
	return false
}

type handlerKey struct{}

// WithHandlerName marks a Subscribe context with the router handler that
// will consume the subscription, so that redeliveries addressed to one
// handler (envelope.MetaTargetHandler) reach only it. Service does this for its
// handlers.
func WithHandlerName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, handlerKey{}, name)
}

func handlerOfSubscription(ctx context.Context) string {
	s, _ := ctx.Value(handlerKey{}).(string)
	return s
}

// drain waits for the messages a subscription's handlers still hold, up to
// the drain timeout, then closes its channel.
func (qc *queueConsumer) drain(sub *subscription) {
	drained := make(chan struct{})
	go func() { sub.sending.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(qc.drainTimeout):
		close(sub.abandon)
		<-drained
	}
	close(sub.out)
}

// close stops intake, waits up to the drain timeout for in-flight deliveries
// to be settled by their handlers, requeues what is left, then ends every
// subscription. watermill-amqp nacks in-flight messages as soon as its
// subscriber closes; draining first is what lets a SIGTERM lose no work.
func (qc *queueConsumer) close() {
	qc.closeOnce.Do(func() {
		qc.mu.Lock()
		close(qc.stop)
		qc.mu.Unlock()
		drained := make(chan struct{})
		go func() { qc.workersDone.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(qc.drainTimeout):
			qc.logger.Warn("drain timeout: requeueing deliveries still in flight",
				slog.String("queue", qc.queue), slog.Duration("drain_timeout", qc.drainTimeout))
			close(qc.drainExpired)
			<-drained
		}
		if qc.src != nil {
			qc.src.Close()
		}
		qc.mu.Lock()
		subs := qc.subs
		qc.subs = nil
		qc.mu.Unlock()
		for _, s := range subs {
			close(s.done)
			qc.drain(s)
		}
	})
}

// SubscriberConfig configures a subscriber on either transport.
type SubscriberConfig struct {
	// QueueName maps a Watermill topic (a binding pattern) to the queue it is
	// consumed from. Optional; by default each topic gets its own queue named
	// after it. A service sets it to a constant, its service queue
	// (ServiceQueueName), so all its handlers share one queue.
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

// Subscriber is the part of a subscriber both transports share: one
// consumer per queue, created on first Subscribe, dispatching each delivery
// to every subscription whose pattern matches its routing key.
type Subscriber struct {
	cfg       SubscriberConfig
	declare   func(ctx context.Context, queue string, pattern string) error
	newSource func(queue string) (Source, error)

	mu        sync.Mutex
	consumers map[string]*queueConsumer
	closed    bool
}

// NewSubscriber returns a subscriber that calls declare before each
// Subscribe (to declare the queue and bind it to the pattern) and newSource
// to start consuming a queue once every expected pattern is subscribed.
func NewSubscriber(cfg SubscriberConfig, declare func(ctx context.Context, queue, pattern string) error, newSource func(queue string) (Source, error)) *Subscriber {
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
		qc = newQueueConsumer(queue, s.cfg.Consumers, s.cfg.DrainTimeout, s.cfg.Patterns, s.cfg.Logger,
			func() (Source, error) { return s.newSource(queue) })
		qc.onEmpty = s.retire
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
// ends every subscription.
func (s *Subscriber) Close() {
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
}

// PublisherStats counts what a publisher did since it started.
type PublisherStats struct {
	Published, Confirmed, Unroutable, Failed int64
}
