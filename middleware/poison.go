package middleware

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Headers of a parked message, next to envelope.MetaOriginalRoutingKey. They
// are part of the contract: `bb dlq`, operators and Python tools read them.
const (
	HeaderPoisonReason       = "bb_poison_reason"        // the error text that got the message parked
	HeaderPoisonKind         = "bb_poison_kind"          // an envelope.Kind* or KindPanic
	HeaderPoisonHandler      = "bb_poison_handler"       // the Watermill handler that failed
	HeaderPoisonService      = "bb_poison_service"       // the service whose queue the message came from
	HeaderPoisonAttempts     = "bb_poison_attempts"      // how many times the handler ran on the message
	HeaderPoisonFirstFailure = "bb_poison_first_failure" // RFC 3339, UTC
	HeaderPoisonLastFailure  = "bb_poison_last_failure"  // RFC 3339, UTC
	HeaderPoisonStack        = "bb_poison_stack"         // the truncated stack of a handler panic
)

// KindPanic is the failure kind of a message parked because its handler
// panicked on every attempt.
const KindPanic = "panic"

// ErrParkFailed is wrapped by the error Poison returns when it could not
// park a message: the transport requeues it, to be parked on a later try.
var ErrParkFailed = errors.New("message could not be parked")

// PoisonConfig configures Poison.
type PoisonConfig struct {
	// Publisher publishes parked messages to Queue and returns once they
	// are stored (bus.Bus.QueuePublisher waits for the confirm). Required.
	Publisher message.Publisher
	// Queue is the poison queue (PoisonQueueName of the service queue).
	// Required.
	Queue string
	// Service is written in HeaderPoisonService. Optional.
	Service string
	// ParkAll parks a message on any error, not only a permanent one or an
	// exhausted retry. Optional; default returns transient errors.
	ParkAll bool
	// Logger receives a warning for every message parked and an error for
	// every one that could not be. Optional; default logs nothing.
	Logger *slog.Logger
}

// Validate reports every problem of the configuration at once.
func (c PoisonConfig) Validate() error {
	var p problems
	p.add(c.Publisher == nil, "Publisher is required (use bus.Bus.QueuePublisher)")
	p.add(c.Queue == "", "Queue is required (use PoisonQueueName)")
	return p.err("PoisonConfig")
}

// PoisonStats counts what a Poison did since it was built.
type PoisonStats struct {
	Parked uint64 // messages put in the poison queue
	Failed uint64 // messages that could not be parked (and were requeued)
}

// Poison is the poison-queue middleware: install its Middleware method
// outermost of the reliability middleware (Poison, Dedup, Retry). Build it
// with NewPoison. It is safe for concurrent use.
//
// When the chain fails permanently (envelope.IsPermanent), with retries
// exhausted (ErrRetriesExhausted), or at all with ParkAll, it publishes the
// message to the poison queue: the body it arrived with, byte for byte, its
// own headers, and the HeaderPoison* headers. Only once that publish is
// confirmed does the chain return nil, so the delivery is acked; otherwise
// an error wrapping ErrParkFailed (no longer permanent) has it requeued.
type Poison struct {
	cfg PoisonConfig

	parked, failed atomic.Uint64
}

// NewPoison returns the poison-queue middleware.
func NewPoison(cfg PoisonConfig) (*Poison, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Logger = cmp.Or(cfg.Logger, discardLogger)
	return &Poison{cfg: cfg}, nil
}

// Stats returns the counters.
func (p *Poison) Stats() PoisonStats {
	return PoisonStats{Parked: p.parked.Load(), Failed: p.failed.Load()}
}

// Middleware implements message.HandlerMiddleware.
func (p *Poison) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := callRecovering(h, msg, nil)
		if err == nil {
			return out, nil
		}
		if !p.cfg.ParkAll && !envelope.IsPermanent(err) && !errors.Is(err, ErrRetriesExhausted) {
			return out, err
		}
		f := describeFailure(msg, err)
		if perr := p.park(msg, f); perr != nil {
			p.failed.Add(1)
			p.cfg.Logger.Error("cannot park failed message; it will be requeued",
				slog.String("event_id", msg.UUID), slog.String("handler", f.handler), slog.String("queue", p.cfg.Queue),
				slog.String("kind", f.kind), slog.String("reason", f.reason), slog.String("error", perr.Error()))
			// The handler's error is left out on purpose: a permanent one
			// would make an outer guard ack the message we failed to park.
			return nil, fmt.Errorf("%w: %s in %q: %w (handler error: %s)", ErrParkFailed, msg.UUID, p.cfg.Queue, perr, f.reason)
		}
		p.parked.Add(1)
		p.cfg.Logger.Warn("message parked in the poison queue",
			slog.String("event_id", msg.UUID), slog.String("handler", f.handler), slog.String("queue", p.cfg.Queue),
			slog.String("routing_key", f.routingKey), slog.String("kind", f.kind), slog.Int("attempts", f.attempts),
			slog.String("reason", f.reason))
		setDisposition(msg, DispositionParked)
		return nil, nil
	}
}

type failure struct {
	reason, kind, handler, routingKey string
	stack                             []byte
	attempts                          int
	first, last                       time.Time
}

func describeFailure(msg *message.Message, err error) failure {
	f := failure{
		reason:     err.Error(),
		kind:       failureKind(err),
		handler:    message.HandlerNameFromCtx(msg.Context()),
		routingKey: routingKeyOf(msg),
	}
	if re, ok := errors.AsType[*RetryError](err); ok {
		f.reason = re.Err.Error()
		f.attempts, f.first, f.last = re.Attempts, re.FirstFailure, re.LastFailure
	} else {
		// No Retry inside: this delivery was one more attempt.
		hist := historyOf(msg, f.handler)
		f.attempts, f.first, f.last = hist.attempts+1, hist.firstFailure, time.Now()
	}
	if f.last.IsZero() {
		f.last = time.Now()
	}
	if f.first.IsZero() {
		f.first = f.last
	}
	if pe, ok := errors.AsType[*PanicError](err); ok {
		f.stack = pe.Stack
	}
	return f
}

func failureKind(err error) string {
	if _, ok := errors.AsType[*PanicError](err); ok {
		return KindPanic
	}
	if perm, ok := errors.AsType[*envelope.PermanentError](err); ok && perm.Kind != "" {
		return perm.Kind
	}
	return envelope.KindHandler
}

func (p *Poison) park(msg *message.Message, f failure) error {
	m := wireCopy(msg)
	maps.Copy(m.Metadata, message.Metadata{HeaderPoisonReason: truncateHeader(f.reason, maxReasonLen), HeaderPoisonKind: f.kind,
		HeaderPoisonAttempts: strconv.Itoa(f.attempts), HeaderPoisonFirstFailure: envelope.FormatTimestamp(f.first),
		HeaderPoisonLastFailure: envelope.FormatTimestamp(f.last)})
	setNonEmpty(m.Metadata, map[string]string{HeaderPoisonHandler: f.handler, HeaderPoisonService: p.cfg.Service,
		envelope.MetaOriginalRoutingKey: f.routingKey, HeaderPoisonStack: truncateHeader(string(f.stack), maxStackLen)})
	// The delivery's context: when the transport has given the delivery up
	// (and requeued it), parking a copy would only duplicate it.
	m.SetContext(msg.Context())
	return p.cfg.Publisher.Publish(p.cfg.Queue, m)
}

// callRecovering calls h and turns a panic into a *PanicError, counted in
// panics unless it is nil.
func callRecovering(h message.HandlerFunc, msg *message.Message, panics *atomic.Uint64) (out []*message.Message, err error) {
	defer func() {
		if v := recover(); v != nil {
			if panics != nil {
				panics.Add(1)
			}
			out, err = nil, &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h(msg)
}
