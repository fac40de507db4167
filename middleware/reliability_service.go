package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus"
)

// ReliabilityConfig configures UseReliability. The zero value gives every
// handler three in-process attempts, three redeliveries through the delay
// queues (1s, 10s, 1m), a poison queue for what still fails, and no
// deduplication.
type ReliabilityConfig struct {
	// Retry configures the retries. Optional; see RetryConfig for the
	// defaults. When its Redeliverer is nil, the service's delay queues
	// are used, unless NoRedelivery is set.
	Retry RetryConfig
	// RedeliveryDelays are the service's delay queues. Optional; default
	// DefaultRedeliveryDelays.
	RedeliveryDelays []time.Duration
	// NoRedelivery keeps every retry in-process: no delay queues.
	NoRedelivery bool
	// DedupStore enables deduplication (NewRedisDedupStore). Optional;
	// nil: no Dedup.
	DedupStore DedupStore
	// DedupWindow is DedupConfig.Window. Optional; default 24h.
	DedupWindow time.Duration
	// ParkAll is PoisonConfig.ParkAll. Optional.
	ParkAll bool
	// Logger is given to each middleware. Optional; default the bus's.
	Logger *slog.Logger
}

// Reliability is the reliability middleware of one service.
type Reliability struct {
	Poison *Poison
	// Dedup is nil without ReliabilityConfig.DedupStore.
	Dedup *Dedup
	Retry *Retry
	// DelayQueues is nil with NoRedelivery or a Redeliverer of one's own.
	DelayQueues *DelayQueues
	// PoisonQueue is the name of the service's poison queue.
	PoisonQueue string
}

// ReliabilityStats gathers the counters of a service's reliability middleware.
type ReliabilityStats struct {
	Retry  RetryStats
	Poison PoisonStats
	Dedup  DedupStats
}

// Stats returns every counter.
func (r *Reliability) Stats() ReliabilityStats {
	s := ReliabilityStats{Retry: r.Retry.Stats(), Poison: r.Poison.Stats()}
	if r.Dedup != nil {
		s.Dedup = r.Dedup.Stats()
	}
	return s
}

// Flush waits for what the middleware writes in the background (Dedup's
// marks) until ctx ends. Call it after the service stopped.
func (r *Reliability) Flush(ctx context.Context) error {
	if r.Dedup == nil {
		return nil
	}
	return r.Dedup.Flush(ctx)
}

// Middleware lists the middleware outermost first: Poison, Dedup (if any),
// Retry.
func (r *Reliability) Middleware() []message.HandlerMiddleware {
	m := []message.HandlerMiddleware{r.Poison.Middleware}
	if r.Dedup != nil {
		m = append(m, r.Dedup.Middleware)
	}
	return append(m, r.Retry.Middleware)
}

// UseReliability declares the poison queue and the delay queues of svc on
// b, builds Poison, Dedup and Retry for it, and installs them with
// svc.Use, outermost first. Call it before adding middleware that should run
// inside the retries (validation, correlation, timeouts), and before Run.
func UseReliability(ctx context.Context, b *bus.Bus, svc *bus.Service, cfg ReliabilityConfig) (*Reliability, error) {
	r, err := NewReliability(ctx, b, svc.Name(), svc.QueueName(), cfg)
	if err != nil {
		return nil, err
	}
	svc.Use(r.Middleware()...)
	return r, nil
}

// NewReliability is UseReliability for a service known by name and queue,
// for a router built by hand; install Middleware on it.
func NewReliability(ctx context.Context, b *bus.Bus, service, serviceQueue string, cfg ReliabilityConfig) (*Reliability, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = b.Logger()
	}
	logger = logger.With(slog.String("service", service))
	r := &Reliability{}
	var err error
	if r.PoisonQueue, err = DeclarePoisonQueue(ctx, b, serviceQueue); err != nil {
		return nil, err
	}
	if r.Poison, err = NewPoison(PoisonConfig{Publisher: b.QueuePublisher(), Queue: r.PoisonQueue, Service: service,
		ParkAll: cfg.ParkAll, Logger: logger}); err != nil {
		return nil, err
	}
	if cfg.DedupStore != nil {
		if r.Dedup, err = NewDedup(DedupConfig{Store: cfg.DedupStore, Service: service, Window: cfg.DedupWindow, Logger: logger}); err != nil {
			return nil, err
		}
	}
	rc := cfg.Retry
	if rc.Redeliverer == nil && !cfg.NoRedelivery {
		if r.DelayQueues, err = NewDelayQueues(ctx, b, DelayQueuesConfig{ServiceQueue: serviceQueue, Delays: cfg.RedeliveryDelays}); err != nil {
			return nil, err
		}
		rc.Redeliverer = r.DelayQueues
	}
	if rc.Logger == nil {
		rc.Logger = logger
	}
	if r.Retry, err = NewRetry(rc); err != nil {
		return nil, fmt.Errorf("cannot set up retries of service %q: %w", service, err)
	}
	return r, nil
}
