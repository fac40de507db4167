package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/topic"
	"github.com/33god/bloodbank-go/bus/transport"
)

// Event is what a typed handler receives: the envelope, its payload decoded
// into T, and the underlying Watermill message.
type Event[T any] struct {
	Envelope envelope.Envelope
	Payload  T
	Message  *message.Message
}

// HandlerFunc handles one event of payload type T. Returning nil acks it;
// returning an error nacks it for a retry, unless the error is permanent
// (see envelope.Permanent). Events published with ctx are linked to this one.
type HandlerFunc[T any] func(ctx context.Context, ev Event[T]) error

// ServiceQueueName names a service's queue: "{exchange}.{service}". The
// name is part of the contract: renaming a service moves it to a new, empty
// queue, and the old one keeps collecting events until it is deleted.
func ServiceQueueName(exchange, service string) string { return exchange + "." + service }

// Service is one Bloodbank service: a Watermill router whose handlers share
// the service queue (ServiceQueueName), bound once per pattern they
// declare. Each delivery goes to every handler whose pattern matches its
// routing key, and is acked when all of them acked it.
//
// Handler names are part of the contract: they name the handler in logs,
// metrics and parked messages, and Watermill requires them to be unique.
type Service struct {
	bus        *Bus
	name       string
	router     *message.Router
	logger     *slog.Logger
	handlers   []serviceHandler
	middleware []message.HandlerMiddleware
	prepare    []func(msg *message.Message, handler string)
}

type serviceHandler struct {
	name, pattern string
	fn            message.NoPublishHandlerFunc
}

// NewService returns a service named name (the SERVICE_NAME setting when
// empty) on the bus. Register handlers, then Run it.
func (b *Bus) NewService(name string) (*Service, error) {
	if name == "" {
		name = b.cfg.ServiceName
	}
	router, err := message.NewRouter(message.RouterConfig{
		// Longer than the drain timeout, so that the subscribers' drain, not
		// the router, decides when in-flight work is given up.
		CloseTimeout: b.cfg.DrainTimeout + 5*time.Second,
	}, WatermillLogger(b.logger))
	if err != nil {
		return nil, err
	}
	return &Service{bus: b, name: name, router: router, logger: b.logger.With(slog.String("service", name))}, nil
}

// Name is the service name.
func (s *Service) Name() string { return s.name }

// QueueName is the service queue.
func (s *Service) QueueName() string { return ServiceQueueName(s.bus.cfg.ExchangeName, s.name) }

// Router is the underlying Watermill router; Run adds the handlers to it.
func (s *Service) Router() *message.Router { return s.router }

// Use adds router-level middleware, outermost first, to every handler.
func (s *Service) Use(m ...message.HandlerMiddleware) { s.middleware = append(s.middleware, m...) }

// Prepare adds f to what runs on each delivery just before it is handed to
// its handler's middleware chain (transport.SubscriberConfig.Prepare), in
// the order added. Call it before Run.
func (s *Service) Prepare(f func(msg *message.Message, handler string)) {
	s.prepare = append(s.prepare, f)
}

// HandleMessage registers an untyped handler for a routing-key pattern.
func (s *Service) HandleMessage(name, pattern string, fn message.NoPublishHandlerFunc) error {
	if name == "" {
		return errors.New("cannot register handler: name is required (it is part of the contract)")
	}
	if _, err := topic.Compile(pattern); err != nil {
		return fmt.Errorf("cannot register handler %q: %w", name, err)
	}
	for _, h := range s.handlers {
		if h.name == name {
			return fmt.Errorf("cannot register handler %q: the name is taken", name)
		}
	}
	s.handlers = append(s.handlers, serviceHandler{name: name, pattern: pattern, fn: fn})
	return nil
}

// Handle registers a typed handler: each event whose routing key matches
// pattern is decoded into T and passed to fn with a context that links what
// fn publishes to the event and gives it its depth and root in the chain. A message that is not a valid envelope, or
// whose payload does not decode into T, is a permanent failure.
func Handle[T any](s *Service, name, pattern string, fn HandlerFunc[T]) error {
	return s.HandleMessage(name, pattern, func(msg *message.Message) error {
		ev, err := DecodeEvent[T](msg)
		if err != nil {
			return err
		}
		ctx := envelope.WithCause(msg.Context(), ev.Envelope.EventID)
		if _, ok := envelope.LineageFromContext(ctx); !ok {
			// No runaway guard ahead: the headers, or a root, still place
			// what fn publishes.
			if l, ok := envelope.KnownLineage(msg); ok {
				ctx = envelope.WithLineage(ctx, l)
			}
		}
		return fn(ctx, ev)
	})
}

// DecodeEvent reads a message into an Event[T]; its errors are permanent.
func DecodeEvent[T any](msg *message.Message) (Event[T], error) {
	if reason, bad := envelope.Malformed(msg); bad {
		return Event[T]{}, &envelope.PermanentError{Kind: envelope.KindMalformed, Err: errors.New(reason)}
	}
	env, err := envelope.FromMessage(msg)
	if err != nil {
		return Event[T]{}, &envelope.PermanentError{Kind: envelope.KindMalformed, Err: err}
	}
	payload, err := envelope.DecodePayload[T](env)
	if err != nil {
		return Event[T]{}, &envelope.PermanentError{Kind: envelope.KindInvalid, Err: err}
	}
	return Event[T]{Envelope: env, Payload: payload, Message: msg}, nil
}

// Patterns lists the patterns the service's handlers declared, in order.
func (s *Service) Patterns() []string {
	var ps []string
	for _, h := range s.handlers {
		if !slices.Contains(ps, h.pattern) {
			ps = append(ps, h.pattern)
		}
	}
	return ps
}

// Running is closed once every handler is consuming.
func (s *Service) Running() <-chan struct{} { return s.router.Running() }

// Run binds the service queue to every declared pattern, consumes until
// ctx ends, then drains: it stops taking deliveries, lets in-flight handlers
// finish and ack (up to BB_DRAIN_TIMEOUT), and returns.
func (s *Service) Run(ctx context.Context) error {
	if len(s.handlers) == 0 {
		return fmt.Errorf("cannot run service %q: it has no handlers", s.name)
	}
	queue, patterns := s.QueueName(), s.Patterns()
	sub, err := s.bus.Subscriber(transport.SubscriberConfig{
		QueueName:    func(string) string { return queue },
		Patterns:     patterns,
		Consumers:    s.bus.cfg.EffectiveConsumers(),
		Prefetch:     s.bus.cfg.Prefetch,
		DrainTimeout: s.bus.cfg.DrainTimeout,
		Logger:       s.logger,
		Prepare:      s.prepareAll(),
	})
	if err != nil {
		return err
	}
	warm := newWarmPool()
	defer warm.close()
	s.router.AddMiddleware(warm.middleware, s.guard)
	s.router.AddMiddleware(s.middleware...)
	for _, h := range s.handlers {
		s.router.AddConsumerHandler(h.name, h.pattern, namedSubscriber{sub, h.name}, h.fn)
	}
	s.logger.Info("service starting", slog.String("transport", s.bus.Transport()), slog.String("queue", queue),
		slog.Any("patterns", patterns), slog.Int("consumers", s.bus.cfg.EffectiveConsumers()))
	err = s.router.Run(ctx)
	if cerr := sub.Close(); cerr != nil && err == nil {
		err = cerr
	}
	s.logger.Info("service stopped")
	return err
}

func (s *Service) prepareAll() func(*message.Message, string) {
	switch fs := s.prepare; len(fs) {
	case 0:
		return nil
	case 1:
		return fs[0]
	default:
		return func(msg *message.Message, handler string) {
			for _, f := range fs {
				f(msg, handler)
			}
		}
	}
}

// namedSubscriber tells the shared subscriber which handler each
// subscription belongs to, so redeliveries can target one handler.
type namedSubscriber struct {
	message.Subscriber
	name string
}

func (n namedSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return n.Subscriber.Subscribe(transport.WithHandlerName(ctx, n.name), topic)
}

// guard is the outermost middleware. A permanent failure that no inner
// middleware (such as a poison queue) took care of would otherwise be
// redelivered forever, so it is logged with the whole message and acked.
func (s *Service) guard(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		var pe *envelope.PermanentError
		if errors.As(err, &pe) {
			s.logger.Error("permanent failure; message acked and dropped (no poison queue installed)",
				slog.String("kind", pe.Kind), slog.String("error", pe.Err.Error()),
				slog.String("event_id", msg.UUID), slog.String("routing_key", msg.Metadata.Get(envelope.MetaRoutingKey)),
				slog.String("handler", message.HandlerNameFromCtx(msg.Context())), slog.String("body", string(msg.Payload)))
			return out, nil
		}
		return out, err
	}
}
