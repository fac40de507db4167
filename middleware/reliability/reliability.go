package reliability

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/middleware"
)

// Config configures Use. The zero value gives every handler three
// in-process attempts, three redeliveries through the delay queues (1s,
// 10s, 1m), a poison queue for what still fails, and no deduplication.
type Config struct {
	// Retry configures the retries. Optional; without a Redeliverer, the
	// service's delay queues are used unless NoRedelivery.
	Retry middleware.RetryConfig
	// RedeliveryDelays are the delay queues. Optional; default DefaultRedeliveryDelays.
	RedeliveryDelays []time.Duration
	// NoRedelivery keeps every retry in-process: no delay queues.
	NoRedelivery bool
	// DedupStore enables deduplication (NewRedisDedupStore). Optional.
	DedupStore middleware.DedupStore
	// DedupWindow is middleware.DedupConfig.Window. Optional; default 24h.
	DedupWindow time.Duration
	// DedupMarkInBackground is middleware.DedupConfig.MarkInBackground
	// (call Stack.Flush after the service stopped). Optional.
	DedupMarkInBackground bool
	// ParkAll is middleware.PoisonConfig.ParkAll. Optional.
	ParkAll bool
	// GuardLinks lets the runaway guard place an event that arrives
	// without depth headers (from Python) through the correlation graph
	// (a *correlation.RedisStore). Optional; without it such an event is
	// let through unplaced.
	GuardLinks middleware.LinkReader
	// GuardCounter counts each root's descendants for BB_MAX_DESCENDANTS
	// (middleware.NewRedisDescendantCounter). Optional; without it that
	// rule is off.
	GuardCounter middleware.DescendantCounter
	// NoGuard leaves the runaway guard out. By default it is installed
	// with the bus's BB_MAX_DEPTH, BB_MAX_REPEATS and BB_MAX_DESCENDANTS.
	NoGuard bool
	// Logger is given to each middleware. Optional; default the bus's.
	Logger *slog.Logger
}

// Stack is the reliability middleware of one service.
type Stack struct {
	Poison      *middleware.Poison
	Dedup       *middleware.Dedup // nil without Config.DedupStore
	Guard       *middleware.Guard // nil with Config.NoGuard
	Retry       *middleware.Retry
	DelayQueues *DelayQueues // nil with NoRedelivery or a Redeliverer of one's own
	PoisonQueue string       // the name of the service's poison queue
}

// Stats gathers the counters of a service's reliability middleware.
type Stats struct {
	Retry  middleware.RetryStats
	Poison middleware.PoisonStats
	Dedup  middleware.DedupStats
	Guard  middleware.GuardStats
}

// Stats returns every counter.
func (r *Stack) Stats() Stats {
	s := Stats{Retry: r.Retry.Stats(), Poison: r.Poison.Stats()}
	if r.Dedup != nil {
		s.Dedup = r.Dedup.Stats()
	}
	if r.Guard != nil {
		s.Guard = r.Guard.Stats()
	}
	return s
}

// Flush waits for the dedup marks and descendant counts written in the
// background, or ctx. Call it after the service stopped.
func (r *Stack) Flush(ctx context.Context) error {
	var errs []error
	if r.Dedup != nil {
		errs = append(errs, r.Dedup.Flush(ctx))
	}
	if r.Guard != nil {
		errs = append(errs, r.Guard.Flush(ctx))
	}
	return errors.Join(errs...)
}

// Middleware lists the middleware outermost first: poison · dedup ·
// guard · retry. The guard sits inside Poison, which parks what it stops,
// and inside Dedup, so a duplicate is not counted twice; outside Retry, as
// retrying cannot change its verdict.
func (r *Stack) Middleware() []message.HandlerMiddleware {
	m := []message.HandlerMiddleware{r.Poison.Middleware}
	if r.Dedup != nil {
		m = append(m, r.Dedup.Middleware)
	}
	if r.Guard != nil {
		m = append(m, r.Guard.Middleware)
	}
	return append(m, r.Retry.Middleware)
}

// Use declares the poison queue and the delay queues of svc on b, builds
// its Poison, Dedup, runaway Guard and Retry, and installs them with svc.Use. Call it
// before adding middleware that should run inside the retries (validation,
// correlation, timeouts), and before Run.
func Use(ctx context.Context, b *bus.Bus, svc *bus.Service, cfg Config) (*Stack, error) {
	r, err := New(ctx, b, svc.Name(), svc.QueueName(), cfg)
	if err != nil {
		return nil, err
	}
	svc.Use(r.Middleware()...)
	if r.Dedup != nil {
		svc.Prepare(r.Dedup.Prefetch)
	}
	return r, nil
}

// New is Use for a router built by hand: install Middleware on it.
func New(ctx context.Context, b *bus.Bus, service, serviceQueue string, cfg Config) (*Stack, error) {
	logger := cmp.Or(cfg.Logger, b.Logger()).With(slog.String("service", service))
	r := &Stack{}
	var err error
	if r.PoisonQueue, err = DeclarePoisonQueue(ctx, b, serviceQueue); err != nil {
		return nil, err
	}
	if r.Poison, err = middleware.NewPoison(middleware.PoisonConfig{Publisher: b.QueuePublisher(), Queue: r.PoisonQueue, Service: service,
		ParkAll: cfg.ParkAll, Logger: logger}); err != nil {
		return nil, err
	}
	if cfg.DedupStore != nil {
		if r.Dedup, err = middleware.NewDedup(middleware.DedupConfig{Store: cfg.DedupStore, Service: service, Window: cfg.DedupWindow,
			MarkInBackground: cfg.DedupMarkInBackground, Logger: logger}); err != nil {
			return nil, err
		}
	}
	if !cfg.NoGuard {
		bc := b.Config()
		if r.Guard, err = middleware.NewGuard(middleware.GuardConfig{MaxDepth: bc.MaxDepth, MaxRepeats: bc.MaxRepeats,
			MaxDescendants: bc.MaxDescendants, Links: cfg.GuardLinks, Counter: cfg.GuardCounter, Logger: logger}); err != nil {
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
	rc.Logger = cmp.Or(rc.Logger, logger)
	if r.Retry, err = middleware.NewRetry(rc); err != nil {
		return nil, fmt.Errorf("cannot set up retries of service %q: %w", service, err)
	}
	return r, nil
}
