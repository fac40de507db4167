package bus

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// delivery is one message taken from a queue, with the means to settle it.
// Both transports produce deliveries; everything above them (dispatch to
// subscriptions, ack aggregation, drain) is shared, so the embedded transport
// behaves as RabbitMQ does by construction.
type delivery struct {
	msg        *message.Message
	body       []byte // the body as it arrived, for parking it unchanged
	routingKey string
	ack        func()
	nack       func() // requeue
}

// source yields the deliveries of one queue.
type source interface {
	// fetch blocks for the next delivery; false once stop is closed or the
	// source has ended.
	fetch(stop <-chan struct{}) (delivery, bool)
	// close releases the source after every delivery has been settled.
	close()
}

// subscription is one Subscribe call: the messages of the queue whose
// routing key matches pattern go to out.
type subscription struct {
	pattern Pattern
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
	newSource    func() (source, error)
	onEmpty      func(*queueConsumer) // the last subscription ended

	mu       sync.RWMutex
	subs     []*subscription
	expected map[string]bool // patterns that must be subscribed before consuming
	started  bool
	src      source

	stop         chan struct{} // no new deliveries
	drainExpired chan struct{} // in-flight deliveries are abandoned (requeued)
	workersDone  sync.WaitGroup
	closeOnce    sync.Once

	unhandled atomic.Int64
}

func newQueueConsumer(queue string, workers int, drain time.Duration, patterns []string, logger *slog.Logger, newSource func() (source, error)) *queueConsumer {
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
func (qc *queueConsumer) add(ctx context.Context, pattern Pattern) (*subscription, error) {
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
		d, ok := qc.src.fetch(qc.stop)
		if !ok {
			return
		}
		if qc.dispatch(d) {
			d.ack()
		} else {
			d.nack()
		}
	}
}

// dispatch hands a delivery to every matching subscription and reports
// whether all of them acked it.
func (qc *queueConsumer) dispatch(d delivery) bool {
	qc.mu.RLock()
	var targets []*subscription
	// A redelivery for one handler (a retry, a replay) goes to that handler
	// alone when it is still here, so the others do not run twice.
	target := d.msg.Metadata.Get(MetaTargetHandler)
	if target != "" && !qc.hasHandler(target, d.routingKey) {
		target = ""
	}
	for _, s := range qc.subs {
		if s.pattern.Match(d.routingKey) && (target == "" || s.handler == target) {
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
			slog.String("queue", qc.queue), slog.String("routing_key", d.routingKey), slog.String("event_id", d.msg.UUID))
		return true
	}
	ok := true
	copies := make([]*message.Message, 0, len(targets))
	for i, s := range targets {
		m := d.msg
		if len(targets) > 1 {
			m = d.msg.Copy()
		}
		// The message's context ends when the delivery is settled, as with
		// watermill-amqp, so work a handler started for it does not outlive
		// it; it does not end when the subscription's context does, so that
		// a shutdown lets in-flight handlers finish.
		ctx, cancel := context.WithCancel(context.WithoutCancel(s.ctx))
		defer cancel()
		if d.body != nil {
			ctx = context.WithValue(ctx, originalBodyKey{}, d.body)
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

type originalBodyKey struct{}

// OriginalBody returns the body a message arrived with, byte for byte, or
// nil when it did not come from a broker. Parking a message uses it so that
// the poison queue holds exactly what the producer sent.
func OriginalBody(msg *message.Message) []byte {
	b, _ := msg.Context().Value(originalBodyKey{}).([]byte)
	return b
}

type handlerKey struct{}

// WithHandlerName marks a Subscribe context with the router handler that
// will consume the subscription, so that redeliveries addressed to one
// handler (MetaTargetHandler) reach only it. Service does this for its
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
			qc.src.close()
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
