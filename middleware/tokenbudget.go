package middleware

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
)

// kindRunaway is the poison kind of a message a runaway guard parked.
const kindRunaway = "runaway"

// RuleRootTokens names the token budget rule in reasons and errors.
const RuleRootTokens = "root_tokens"

// TokenBudgetStore is what TokenBudget reads: the links, to find a root,
// and the tokens charged to it. *correlation.RedisStore implements it.
type TokenBudgetStore interface {
	correlation.LinkReader
	RootTokens(ctx context.Context, root uuid.UUID) (int64, error)
}

var _ TokenBudgetStore = (*correlation.RedisStore)(nil)

// TokenBudgetConfig configures NewTokenBudget.
type TokenBudgetConfig struct {
	// Store holds the links and the cost rolled up per root. Required.
	Store TokenBudgetStore
	// MaxRootTokens is the most tokens the events of one root's chain may
	// report before its further messages are parked (BB_MAX_ROOT_TOKENS).
	// Required, positive: a budget of 0 means no guard, so do not install one.
	MaxRootTokens int64
	// Timeout bounds the reads for one message; when they fail or take
	// longer the message passes unchecked. Optional; default 500 ms.
	Timeout time.Duration
	// Logger receives a warning when Redis cannot be read, at most one per
	// WarnInterval (default 10 s) with the count since. Optional; default
	// logs nothing.
	Logger       *slog.Logger
	WarnInterval time.Duration
}

// Validate reports every problem of the configuration at once.
func (c TokenBudgetConfig) Validate() error {
	var p problems
	p.add(c.Store == nil, "Store is required (use the correlation store)")
	p.add(c.MaxRootTokens <= 0, "MaxRootTokens %d must be positive: without a budget, do not install the guard", c.MaxRootTokens)
	p.add(c.Timeout < 0, "Timeout %s must not be negative", c.Timeout)
	p.add(c.WarnInterval < 0, "WarnInterval %s must not be negative", c.WarnInterval)
	return p.err("TokenBudgetConfig")
}

// TokenBudgetStats counts what a TokenBudget decided since it was built.
type TokenBudgetStats struct {
	Parked    uint64 // failed with kind runaway: the root had spent its budget
	Unchecked uint64 // let through because Redis could not be read in time
}

// TokenBudget is the token budget guard: a message whose chain's root has
// been charged MaxRootTokens or more (correlation.RedisStore.Cost) fails
// with a *envelope.PermanentError of kind "runaway" and a *BudgetError, so
// the Poison middleware parks it and the handler never runs. The root is
// the message's x-bb-root (MetaRoot), else found from its correlation_ids
// (correlation.RootOf). Each message costs one HGET, plus the walk to the
// root when it carries no x-bb-root. Redis away never stops a message: it
// is let through, counted and logged. Install its Middleware inside Poison
// and Retry, on the handlers that run commands. Safe for concurrent use.
type TokenBudget struct {
	cfg                TokenBudgetConfig
	parked, unchecked  atomic.Uint64
	lastWarn, warnedAt atomic.Int64
}

// NewTokenBudget returns the guard.
func NewTokenBudget(cfg TokenBudgetConfig) (*TokenBudget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 500*time.Millisecond)
	cfg.WarnInterval = cmp.Or(cfg.WarnInterval, 10*time.Second)
	cfg.Logger = cmp.Or(cfg.Logger, discardLogger)
	return &TokenBudget{cfg: cfg}, nil
}

// Stats returns the counters.
func (b *TokenBudget) Stats() TokenBudgetStats {
	return TokenBudgetStats{Parked: b.parked.Load(), Unchecked: b.unchecked.Load()}
}

// BudgetError says which root spent how much of which budget.
type BudgetError struct {
	Rule   string    // RuleRootTokens
	Root   uuid.UUID // the root event of the chain
	Spent  int64     // tokens charged to the root
	Budget int64     // the limit, MaxRootTokens
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("rule %s: root %s has spent %d tokens, budget %d (BB_MAX_ROOT_TOKENS)", e.Rule, e.Root, e.Spent, e.Budget)
}

// Middleware implements message.HandlerMiddleware.
func (b *TokenBudget) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		id, err := uuid.Parse(msg.UUID)
		if err != nil {
			return h(msg) // not an event: nothing to charge it to
		}
		ctx, cancel := context.WithTimeout(msg.Context(), b.cfg.Timeout)
		root, err := correlation.RootOf(ctx, b.cfg.Store, id, envelope.CorrelationIDs(msg), msg.Metadata.Get(MetaRoot))
		var spent int64
		if err == nil {
			spent, err = b.cfg.Store.RootTokens(ctx, root)
		}
		cancel()
		if err != nil {
			b.warn(msg, err)
			return h(msg)
		}
		if spent >= b.cfg.MaxRootTokens {
			b.parked.Add(1)
			return nil, &envelope.PermanentError{Kind: kindRunaway,
				Err: &BudgetError{Rule: RuleRootTokens, Root: root, Spent: spent, Budget: b.cfg.MaxRootTokens}}
		}
		return h(msg)
	}
}

func (b *TokenBudget) warn(msg *message.Message, err error) {
	total := b.unchecked.Add(1)
	now := time.Now().UnixNano()
	last := b.lastWarn.Load()
	if last != 0 && now-last < int64(b.cfg.WarnInterval) || !b.lastWarn.CompareAndSwap(last, now) {
		return
	}
	since := total - uint64(b.warnedAt.Swap(int64(total)))
	b.cfg.Logger.Warn("token budget not checked: the correlation store cannot be read; the message goes through",
		slog.String("event_id", msg.UUID), slog.String("error", err.Error()),
		slog.Uint64("unchecked_since_last_warning", since), slog.Uint64("unchecked_total", total))
}
