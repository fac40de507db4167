package main

import (
	"context"
	"log/slog"
	"time"

	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// stackConfig is what the middleware stack of the service is built from.
type stackConfig struct {
	events         *domains.Registry
	tracing        *middleware.Tracing
	dedup          middleware.DedupStore
	guardLinks     middleware.LinkReader
	guardCounter   middleware.DescendantCounter
	recorder       *correlation.Recorder
	commandTimeout time.Duration
	maxRootTokens  int64                       // BB_MAX_ROOT_TOKENS; 0: no token budget
	costs          middleware.TokenBudgetStore // read by the token budget
	strictTypes    bool
	logger         *slog.Logger
}

// stack is the middleware installed on the service, and the metrics that
// read its counters.
type stack struct {
	reliability *reliability.Stack
	validation  *middleware.Validation
	metrics     *gateway.Metrics
}

// installStack installs the architecture's middleware on svc, outermost
// first:
//
//	recover · metrics · trace · poison · dedup · guard · retry · validate · [token budget] · correlation · timeout
//
// Recover and metrics are router middleware (they run before bus.Service's
// own guard, which only acts when no poison queue is installed); the rest
// go through svc.Use in order. Poison, dedup and retry come from
// reliability.Use: the poison queue "{queue}.poison", the delay
// queues "{queue}.retry.{1s,10s,1m}" and dedup keys in the correlation
// Redis; so does the runaway guard, which places Python's events through
// the correlation graph and counts descendants per root there. Validation sits inside retry so that its permanent errors are
// parked at once instead of retried, and the timeout innermost, so that
// each attempt gets its own. The token budget (BB_MAX_ROOT_TOKENS) is
// installed only when set, after validation so that a bad command is parked
// for what it is.
//
// The metrics read every counter at scrape time: the publisher's, the
// handler calls the metrics middleware sees (consumed, handler duration),
// retries (in-process ones plus trips through a delay queue, each of which
// ends in one more attempt), parked and deduplicated messages, and the
// correlation writes the recorder gave up on.
func installStack(ctx context.Context, b *bus.Bus, svc *bus.Service, cfg stackConfig) (*stack, error) {
	s := &stack{}
	var err error
	if s.metrics, err = gateway.NewMetrics(gateway.MetricsConfig{
		Events:         cfg.events,
		PublisherStats: b.PublisherStats,
		Retried: func() float64 {
			r := s.reliability.Retry.Stats()
			return float64(r.Retried + r.Redelivered)
		},
		Parked:                  func() float64 { return float64(s.reliability.Poison.Stats().Parked) },
		Deduplicated:            func() float64 { return float64(s.reliability.Dedup.Stats().Duplicates) },
		CorrelationWritesFailed: func() float64 { return float64(cfg.recorder.Failed()) },
		RunawayParked: func(rule string) float64 {
			if s.reliability.Guard == nil {
				return 0
			}
			return float64(s.reliability.Guard.Stats().Parked(rule))
		},
		Logger: cfg.logger,
	}); err != nil {
		return nil, err
	}

	router := svc.Router()
	router.AddMiddleware(wmmiddleware.Recoverer)
	s.metrics.AddRouterMetrics(router)
	svc.Use(cfg.tracing.Middleware)
	if s.reliability, err = reliability.Use(ctx, b, svc, reliability.Config{
		DedupStore:            cfg.dedup,
		DedupMarkInBackground: true, // flushed on shutdown
		GuardLinks:            cfg.guardLinks,
		GuardCounter:          cfg.guardCounter,
		Logger:                cfg.logger,
	}); err != nil {
		return nil, err
	}
	if s.validation, err = middleware.NewValidation(middleware.ValidationConfig{Validator: cfg.events, StrictTypes: cfg.strictTypes, Logger: cfg.logger}); err != nil {
		return nil, err
	}
	svc.Use(s.validation.Middleware)
	if cfg.maxRootTokens > 0 { // off, it costs no Redis read per command
		budget, err := middleware.NewTokenBudget(middleware.TokenBudgetConfig{Store: cfg.costs, MaxRootTokens: cfg.maxRootTokens, Logger: cfg.logger})
		if err != nil {
			return nil, err
		}
		svc.Use(budget.Middleware)
	}
	svc.Use(middleware.Causation, wmmiddleware.Timeout(cfg.commandTimeout))
	return s, nil
}
