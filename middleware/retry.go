package middleware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Headers of a message that Retry sends back through the broker, read back
// when it returns. They are part of the contract: Python consumers see them.
const (
	HeaderAttempts     = "bb_attempts"      // how many times the handler has run on the message
	HeaderRedeliveries = "bb_redeliveries"  // how many times the message went through a delay queue
	HeaderFirstFailure = "bb_first_failure" // when the first attempt failed (RFC 3339, UTC)
	HeaderLastError    = "bb_last_error"    // the text of the last attempt's error
)

var retryHeaders = map[string]bool{HeaderAttempts: true, HeaderRedeliveries: true, HeaderFirstFailure: true, HeaderLastError: true}

// ErrRetriesExhausted matches the *RetryError of a message whose every
// attempt and redelivery failed: it needs an operator, and Poison parks it.
var ErrRetriesExhausted = errors.New("retries exhausted")

// RetryError is what Retry returns when it stops trying a message without
// success: an attempt failed permanently, every attempt failed (Exhausted),
// or the message's context ended. It wraps the last attempt's error.
type RetryError struct {
	Attempts, Redeliveries    int       // across every delivery
	FirstFailure, LastFailure time.Time // across every delivery
	Exhausted                 bool      // no attempt or redelivery is left (ErrRetriesExhausted)
	Err                       error     // the last attempt's error
}

func (e *RetryError) Error() string {
	if e.Exhausted {
		return fmt.Sprintf("retries exhausted after %d attempts and %d redeliveries: %v", e.Attempts, e.Redeliveries, e.Err)
	}
	return fmt.Sprintf("attempt %d failed: %v", e.Attempts, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *RetryError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrRetriesExhausted) hold for an exhausted retry.
func (e *RetryError) Is(target error) bool { return target == ErrRetriesExhausted && e.Exhausted }

// PanicError is a handler panic that Retry (or Poison) recovered. It is
// transient: retried, then parked with kind KindPanic.
type PanicError struct {
	Value any    // what the handler panicked with
	Stack []byte // the goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// RetryParams is what a RetryConfig.OnRetry hook gets.
type RetryParams struct {
	Message *message.Message // do not modify it
	Handler string           // the Watermill handler name
	Attempt int              // the attempt that failed, counted across deliveries from 1
	Err     error            // its error
	Delay   time.Duration    // the wait before the next attempt
}

// RedeliverParams is what a Redeliverer gets.
type RedeliverParams struct {
	// Message is the copy to send: the event id and body as they arrived, the
	// retry headers, and the headers that bring it back to this handler alone.
	Message    *message.Message
	Original   *message.Message // the failed message as the handler got it; do not modify it
	Handler    string           // the Watermill handler name
	Redelivery int              // numbers this trip through the broker, from 1
	Attempts   int              // how many times the handler ran on the message so far
	Err        error            // the last attempt's error
}

// Redeliverer sends a message back through the broker to be delivered
// again after a delay, so that a long wait does not pin a consumer.
// Redeliver returns nil only once the broker holds the message: the delivery
// in hand is then acked. reliability.DelayQueues implements it.
type Redeliverer interface {
	Redeliver(ctx context.Context, p RedeliverParams) error
}

// RetryConfig configures Retry. The zero value is usable: three attempts a
// hundred milliseconds apart, doubling, with jitter, and no redelivery.
type RetryConfig struct {
	// MaxAttempts is how many times the handler runs on one delivery
	// before Retry gives up on it in-process. Optional; default 3.
	MaxAttempts int
	// InitialInterval is the wait after the first failure. Optional; default 100ms.
	InitialInterval time.Duration
	// Multiplier scales each further wait. Optional; default 2; at least 1.
	Multiplier float64
	// MaxInterval caps every wait, jitter included. Optional; default 5s.
	MaxInterval time.Duration
	// Jitter spreads each wait over ±Jitter of it, so that consumers failing
	// together do not retry together. Optional; default 0.5; from 0 to 1.
	Jitter float64
	// NoJitter makes every wait exact (tests, mostly). Optional.
	NoJitter bool
	// MaxElapsed bounds the time one delivery spends in Retry, without
	// interrupting an attempt: one whose wait would end later is left to a
	// redelivery. Optional; default 30s.
	MaxElapsed time.Duration
	// AttemptTimeout bounds each attempt: the handler gets a context that
	// ends after it. Optional; default none (the message's context only).
	AttemptTimeout time.Duration
	// Redeliverer sends a message whose in-process attempts are spent back
	// through the broker. Optional; reliability.NewDelayQueues builds one.
	Redeliverer Redeliverer
	// MaxRedeliveries is how many times a message goes back through the
	// broker before Retry gives up: the handler runs at most
	// MaxAttempts × (MaxRedeliveries + 1) times. Optional; default 3 when
	// Redeliverer is set; requires Redeliverer.
	MaxRedeliveries int
	// OnRetry is called before each wait between two attempts. Optional.
	OnRetry func(RetryParams)
	// Logger receives retries (debug) and exhaustion (warning). Optional.
	Logger *slog.Logger
}

func (c *RetryConfig) setDefaults() {
	c.MaxAttempts = cmp.Or(c.MaxAttempts, 3)
	c.InitialInterval = cmp.Or(c.InitialInterval, 100*time.Millisecond)
	c.Multiplier = cmp.Or(c.Multiplier, 2)
	c.MaxInterval = cmp.Or(c.MaxInterval, max(5*time.Second, c.InitialInterval))
	c.MaxElapsed = cmp.Or(c.MaxElapsed, 30*time.Second)
	switch {
	case c.NoJitter:
		c.Jitter = 0
	case c.Jitter == 0:
		c.Jitter = 0.5
	}
	if c.Redeliverer != nil {
		c.MaxRedeliveries = cmp.Or(c.MaxRedeliveries, 3)
	}
	if c.OnRetry == nil {
		c.OnRetry = func(RetryParams) {}
	}
	c.Logger = cmp.Or(c.Logger, discardLogger)
}

// Validate reports every problem of the configuration at once.
func (c RetryConfig) Validate() error {
	var p problems
	p.add(c.MaxAttempts < 0, "MaxAttempts %d is negative", c.MaxAttempts)
	p.add(c.InitialInterval < 0, "InitialInterval %s is negative", c.InitialInterval)
	p.add(c.MaxInterval < 0, "MaxInterval %s is negative", c.MaxInterval)
	p.add(c.MaxElapsed < 0, "MaxElapsed %s is negative", c.MaxElapsed)
	p.add(c.AttemptTimeout < 0, "AttemptTimeout %s is negative", c.AttemptTimeout)
	p.add(c.MaxInterval > 0 && c.InitialInterval > c.MaxInterval, "InitialInterval %s is above MaxInterval %s", c.InitialInterval, c.MaxInterval)
	p.add(c.Multiplier != 0 && (c.Multiplier < 1 || math.IsNaN(c.Multiplier) || math.IsInf(c.Multiplier, 0)), "Multiplier %g is below 1", c.Multiplier)
	p.add(c.Jitter < 0 || c.Jitter > 1 || math.IsNaN(c.Jitter), "Jitter %g is not between 0 and 1", c.Jitter)
	p.add(c.MaxRedeliveries < 0, "MaxRedeliveries %d is negative", c.MaxRedeliveries)
	p.add(c.MaxRedeliveries > 0 && c.Redeliverer == nil, "MaxRedeliveries needs a Redeliverer")
	return p.err("RetryConfig")
}

// RetryStats counts what a Retry did since it was built.
type RetryStats struct {
	Retried     uint64 // in-process attempts after the first of a delivery
	Redelivered uint64 // messages sent back through the broker
	Exhausted   uint64 // messages given up after every attempt failed
	Panics      uint64 // handler panics recovered
}

// Retry is the retry middleware: install its Middleware method inside
// Poison and Dedup. Build it with NewRetry. It is safe for concurrent use.
// Each attempt gets a fresh context; a panic becomes a retried *PanicError;
// a permanent error returns at once. Spent attempts go to the Redeliverer
// (or are requeued if the broker refuses), then end in ErrRetriesExhausted.
type Retry struct {
	cfg RetryConfig

	retried, redelivered, exhausted, panics atomic.Uint64
}

// NewRetry returns the retry middleware.
func NewRetry(cfg RetryConfig) (*Retry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Retry{cfg: cfg}, nil
}

// Stats returns the counters.
func (r *Retry) Stats() RetryStats {
	return RetryStats{Retried: r.retried.Load(), Redelivered: r.redelivered.Load(), Exhausted: r.exhausted.Load(), Panics: r.panics.Load()}
}

type attemptKey struct{}

// attemptCtx is an attempt's context: its cancellation with its number,
// in one allocation where context.WithValue took one more.
type attemptCtx struct {
	context.Context
	n int
}

func (c *attemptCtx) Value(key any) any {
	if key == (attemptKey{}) {
		return c.n
	}
	return c.Context.Value(key)
}

// AttemptFromCtx returns which attempt at its message a handler's context
// belongs to, counted from 1 across deliveries, or 0 outside Retry.
func AttemptFromCtx(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}

// Backoff returns the wait after failed attempt n of a delivery (n from 1):
// InitialInterval × Multiplier^(n-1), spread by ±Jitter, at most MaxInterval.
func (r *Retry) Backoff(n int) time.Duration {
	c := r.cfg
	d := float64(c.InitialInterval) * math.Pow(c.Multiplier, float64(max(n-1, 0)))
	if c.Jitter > 0 {
		d *= 1 - c.Jitter + 2*c.Jitter*rand.Float64()
	}
	if d > float64(c.MaxInterval) || math.IsInf(d, 0) || math.IsNaN(d) {
		return c.MaxInterval
	}
	return time.Duration(d)
}

// Middleware implements message.HandlerMiddleware.
func (r *Retry) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		orig := msg.Context()
		handler := message.HandlerNameFromCtx(orig)
		hist := historyOf(msg, handler)
		start := time.Now()
		attempts := hist.attempts
		var lastErr error
		var lastFailure time.Time
		giveUp := func(exhausted bool) *RetryError {
			return &RetryError{Attempts: attempts, Redeliveries: hist.redeliveries, FirstFailure: hist.firstFailure,
				LastFailure: lastFailure, Exhausted: exhausted, Err: lastErr}
		}
		for i := range r.cfg.MaxAttempts {
			if i > 0 {
				delay := r.Backoff(i)
				if time.Since(start)+delay > r.cfg.MaxElapsed {
					break
				}
				r.retried.Add(1)
				r.cfg.OnRetry(RetryParams{Message: msg, Handler: handler, Attempt: attempts, Err: lastErr, Delay: delay})
				r.cfg.Logger.Debug("handler failed, retrying", slog.String("handler", handler), slog.String("event_id", msg.UUID),
					slog.Int("attempt", attempts), slog.Duration("retry_in", delay), slog.String("error", lastErr.Error()))
				if !sleepCtx(orig, delay) {
					// The delivery is over: the transport requeues it.
					return nil, giveUp(false)
				}
			}
			attempts++
			out, err := r.attempt(h, msg, orig, attempts)
			if err == nil {
				return out, nil
			}
			lastErr, lastFailure = err, time.Now()
			if hist.firstFailure.IsZero() {
				hist.firstFailure = lastFailure
			}
			if envelope.IsPermanent(err) {
				return nil, giveUp(false)
			}
		}
		if r.cfg.Redeliverer == nil || hist.redeliveries >= r.cfg.MaxRedeliveries {
			r.exhausted.Add(1)
			r.cfg.Logger.Warn("retries exhausted", slog.String("handler", handler), slog.String("event_id", msg.UUID),
				slog.Int("attempts", attempts), slog.Int("redeliveries", hist.redeliveries), slog.String("error", lastErr.Error()))
			return nil, giveUp(true)
		}
		return nil, r.redeliver(msg, handler, attempts, hist, lastErr)
	}
}

func (r *Retry) attempt(h message.HandlerFunc, msg *message.Message, orig context.Context, n int) ([]*message.Message, error) {
	var ctx context.Context
	var cancel context.CancelFunc
	if r.cfg.AttemptTimeout > 0 {
		ctx, cancel = context.WithTimeout(orig, r.cfg.AttemptTimeout)
	} else {
		ctx, cancel = context.WithCancel(orig)
	}
	defer cancel()
	defer msg.SetContext(orig)
	msg.SetContext(&attemptCtx{Context: ctx, n: n})
	return callRecovering(h, msg, &r.panics)
}

func (r *Retry) redeliver(msg *message.Message, handler string, attempts int, hist failureHistory, lastErr error) error {
	redelivery := hist.redeliveries + 1
	cp := wireCopy(msg)
	maps.Copy(cp.Metadata, message.Metadata{HeaderAttempts: strconv.Itoa(attempts), HeaderRedeliveries: strconv.Itoa(redelivery),
		HeaderFirstFailure: envelope.FormatTimestamp(hist.firstFailure), HeaderLastError: truncateHeader(lastErr.Error(), maxReasonLen)})
	setNonEmpty(cp.Metadata, map[string]string{envelope.MetaOriginalRoutingKey: routingKeyOf(msg), envelope.MetaTargetHandler: handler})
	ctx := msg.Context()
	cp.SetContext(ctx)
	err := r.cfg.Redeliverer.Redeliver(ctx, RedeliverParams{Message: cp, Original: msg, Handler: handler,
		Redelivery: redelivery, Attempts: attempts, Err: lastErr})
	if err != nil {
		// Not the handler's error: neither permanent nor exhausted, so the
		// delivery is requeued rather than parked or dropped.
		return fmt.Errorf("cannot redeliver message %s after %d attempts (it will be requeued): %w; last handler error: %s",
			msg.UUID, attempts, err, lastErr.Error())
	}
	r.redelivered.Add(1)
	r.cfg.Logger.Debug("handler failed, redelivering through the broker", slog.String("handler", handler),
		slog.String("event_id", msg.UUID), slog.Int("attempts", attempts), slog.Int("redelivery", redelivery),
		slog.String("error", lastErr.Error()))
	setDisposition(msg, DispositionRedelivered)
	return nil
}

// sleepCtx sleeps for d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
