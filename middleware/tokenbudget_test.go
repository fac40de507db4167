package middleware_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/llm"
	"github.com/33god/bloodbank-go/middleware"
)

func newCostStore(t testing.TB) *correlation.EmbeddedStore {
	t.Helper()
	s, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// chargeRoot charges tokens to root through a response whose parent is
// parent, and returns the response's id.
func chargeRoot(t *testing.T, s correlation.Store, root, parent uuid.UUID, tokens int64) uuid.UUID {
	t.Helper()
	resp := uuid.New()
	err := s.Record(t.Context(), correlation.Link{Child: resp, Parents: []uuid.UUID{parent},
		Cost: &correlation.Cost{Root: root, Agent: "planner", TokensUsed: tokens}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func prompt(t *testing.T, parents ...uuid.UUID) *message.Message {
	t.Helper()
	msg := relEventMsg(t, thread.RoutingKeyPrompt, thread.Prompt{Provider: "anthropic", Prompt: "again"})
	if len(parents) > 0 {
		envelope.SetCorrelationIDs(msg, parents...)
	}
	return msg
}

func TestTokenBudget_parksCommandsOfARootOverBudget(t *testing.T) {
	s := newCostStore(t)
	root, mid := uuid.New(), uuid.New()
	// A chain as the Python tracker leaves it: root has no link, mid does.
	if err := s.Record(t.Context(), correlation.Link{Child: mid, Parents: []uuid.UUID{root}}); err != nil {
		t.Fatal(err)
	}
	resp := chargeRoot(t, s, root, mid, 60)
	guard, err := middleware.NewTokenBudget(middleware.TokenBudgetConfig{Store: s, MaxRootTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	h := guard.Middleware(func(*message.Message) ([]*message.Message, error) { ran++; return nil, nil })

	if _, err := h(prompt(t, resp)); err != nil || ran != 1 {
		t.Fatalf("under budget (60 of 100): err = %v, ran %d times; want the handler to run", err, ran)
	}
	chargeRoot(t, s, root, mid, 40)
	_, err = h(prompt(t, resp))
	var perm *envelope.PermanentError
	var budget *middleware.BudgetError
	if !errors.As(err, &perm) || perm.Kind != "runaway" || !errors.As(err, &budget) {
		t.Fatalf("at budget (100 of 100): err = %v, want a permanent runaway failure with a BudgetError", err)
	}
	if budget.Root != root || budget.Spent != 100 || budget.Budget != 100 || budget.Rule != middleware.RuleRootTokens {
		t.Errorf("BudgetError = %+v, want root %s, 100 spent of 100, rule root_tokens", budget, root)
	}
	for _, want := range []string{"root_tokens", root.String(), "100"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("reason %q does not name %q", err, want)
		}
	}
	if ran != 1 {
		t.Errorf("handler ran %d times, want it not to run for the parked command", ran)
	}

	// The x-bb-root header names the root without a walk; another root is untouched.
	other := prompt(t, resp)
	other.Metadata.Set(middleware.MetaRoot, uuid.NewString())
	if _, err := h(other); err != nil {
		t.Errorf("a command of another root (x-bb-root): err = %v, want it through", err)
	}
	if st := guard.Stats(); st.Parked != 1 || st.Unchecked != 0 {
		t.Errorf("Stats = %+v, want 1 parked, 0 unchecked", st)
	}
}

func TestTokenBudget_parkedWithKindAndReason(t *testing.T) {
	s := newCostStore(t)
	root := uuid.New()
	resp := chargeRoot(t, s, root, root, 500)
	guard, err := middleware.NewTokenBudget(middleware.TokenBudgetConfig{Store: s, MaxRootTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	pub := &relCapturePublisher{}
	poison, err := middleware.NewPoison(middleware.PoisonConfig{Publisher: pub, Queue: "q.poison"})
	if err != nil {
		t.Fatal(err)
	}
	h := poison.Middleware(guard.Middleware(func(*message.Message) ([]*message.Message, error) {
		t.Error("the handler ran for a command over budget")
		return nil, nil
	}))
	if _, err := h(prompt(t, resp)); err != nil {
		t.Fatalf("poison returned %v, want the command parked", err)
	}
	got := pub.published()
	if len(got) != 1 {
		t.Fatalf("%d messages parked, want 1", len(got))
	}
	md := got[0].msg.Metadata
	if md.Get(middleware.HeaderPoisonKind) != "runaway" || !strings.Contains(md.Get(middleware.HeaderPoisonReason), "rule root_tokens: root "+root.String()+" has spent 500 tokens, budget 100") {
		t.Errorf("parked with kind %q, reason %q; want runaway naming the rule, the root and the numbers",
			md.Get(middleware.HeaderPoisonKind), md.Get(middleware.HeaderPoisonReason))
	}
}

func TestTokenBudget_redisAwayLetsCommandsThrough(t *testing.T) {
	s := newCostStore(t)
	root := uuid.New()
	resp := chargeRoot(t, s, root, root, 500)
	var logs relLogs
	guard, err := middleware.NewTokenBudget(middleware.TokenBudgetConfig{Store: s, MaxRootTokens: 100, Timeout: 200 * time.Millisecond, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	s.Server().Close()
	ran := 0
	h := guard.Middleware(func(*message.Message) ([]*message.Message, error) { ran++; return nil, nil })
	for range 3 {
		if _, err := h(prompt(t, resp)); err != nil {
			t.Fatalf("with Redis away: err = %v, want the command through", err)
		}
	}
	if st := guard.Stats(); ran != 3 || st.Unchecked != 3 || st.Parked != 0 {
		t.Errorf("ran %d, Stats %+v; want 3 runs, 3 unchecked", ran, st)
	}
	if n := strings.Count(logs.String(), "token budget not checked"); n != 1 {
		t.Errorf("%d warnings for 3 unchecked commands, want 1 (rate-limited)", n)
	}
}

func TestTokenBudgetConfig_validate(t *testing.T) {
	_, err := middleware.NewTokenBudget(middleware.TokenBudgetConfig{Timeout: -time.Second})
	for _, want := range []string{"Store is required", "MaxRootTokens 0 must be positive", "Timeout -1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewTokenBudget(bad config) = %v, want it to say %q", err, want)
		}
	}
}

func TestDefaultLinkCost(t *testing.T) {
	root := uuid.New()
	tokens, ms := 1200, 3400
	tests := []struct {
		name    string
		msg     func() *message.Message
		want    *correlation.Cost
		wantNil bool
	}{
		{"agent.thread.response", func() *message.Message {
			m := relEventMsg(t, thread.RoutingKeyResponse, thread.Response{Provider: "anthropic", Response: "ok", TokensUsed: &tokens, DurationMS: &ms})
			m.Metadata.Set(envelope.MetaSourceApp, "planner")
			return m
		}, &correlation.Cost{Agent: "planner", TokensUsed: 1200, DurationMS: 3400}, false},
		{"llm.response with x-bb-root and only tokens", func() *message.Message {
			m := relEventMsg(t, llm.RoutingKeyResponse, llm.Response{Provider: "openai", Response: "ok", TokensUsed: &tokens})
			m.Metadata.Set(middleware.MetaRoot, root.String())
			return m
		}, &correlation.Cost{Root: root, TokensUsed: 1200}, false},
		{"a response reporting nothing", func() *message.Message {
			return relEventMsg(t, thread.RoutingKeyResponse, thread.Response{Provider: "anthropic", Response: "ok"})
		}, nil, true},
		{"another event type", func() *message.Message {
			return relEventMsg(t, thread.RoutingKeyPrompt, thread.Prompt{Provider: "anthropic", Prompt: "p"})
		}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := middleware.DefaultLinkCost(middleware.LinkMetadataParams{Message: tt.msg()})
			if tt.wantNil {
				if got != nil {
					t.Errorf("DefaultLinkCost = %+v, want nil", got)
				}
				return
			}
			if got == nil || got.Agent != tt.want.Agent || got.TokensUsed != tt.want.TokensUsed || got.DurationMS != tt.want.DurationMS || got.Root != tt.want.Root {
				t.Errorf("DefaultLinkCost = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A response published through the RecordingPublisher is charged to the
// root of its chain: the prompt that caused it.
func TestRecordingPublisher_rollsUpCost(t *testing.T) {
	s := newCostStore(t)
	rec, err := correlation.NewRecorder(s, correlation.RecorderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	root := uuid.New()
	tokens := 42
	pub := middleware.NewRecordingPublisher(&relCapturePublisher{}, rec)
	resp := relEventMsg(t, thread.RoutingKeyResponse, thread.Response{Provider: "anthropic", Response: "ok", TokensUsed: &tokens})
	resp.Metadata.Set(envelope.MetaSourceApp, "echo")
	envelope.SetCorrelationIDs(resp, root)
	if err := pub.Publish(thread.RoutingKeyResponse, resp); err != nil {
		t.Fatal(err)
	}
	got, err := s.Cost(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	if got.TokensUsed != 42 || got.ByAgent["echo"].TokensUsed != 42 {
		t.Errorf("cost of the root = %+v, want 42 tokens, all by echo", got)
	}
}
