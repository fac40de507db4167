package cqrs_test

//lint:file-ignore SA1019 prompt_id is deprecated, yet responses still carry it as Python ones do

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/cqrs/commands"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/llm"
)

func builtins(p *cqrs.Processor) error { return commands.Register(p, commands.EchoAgent{}) }

// executeLLMPrompt makes llm.prompt, a fact in the catalogue as in Python,
// a command of this registry, as a service that runs a model for it does.
func executeLLMPrompt(r *domains.Registry) error {
	return r.ExecuteAsCommand(llm.RoutingKeyPrompt, llm.RoutingKeyResponse)
}

func TestProcessor_promptIsAnsweredWithLinkedResponse(t *testing.T) {
	h := newHarness(t, harnessOptions{register: builtins})
	responses := h.watch(thread.RoutingKeyResponse)
	h.run()

	prompt := promptEnvelope(t, "Analyze this codebase")
	h.publish(prompt)
	resp := next(t, responses)

	if want := cqrs.SideEffectID(thread.RoutingKeyResponse, prompt.EventID, 0); resp.EventID != want {
		t.Errorf("response id = %s, want the deterministic %s", resp.EventID, want)
	}
	if !reflect.DeepEqual(resp.CorrelationIDs, []uuid.UUID{prompt.EventID}) {
		t.Errorf("correlation_ids = %v, want [%s]", resp.CorrelationIDs, prompt.EventID)
	}
	if resp.AgentContext == nil || resp.AgentContext.Name != claudeCode.Name || resp.AgentContext.InstanceID != claudeCode.InstanceID {
		t.Errorf("agent_context = %+v, want the prompt's %+v", resp.AgentContext, claudeCode)
	}
	if resp.Source.App != "command_processor" || resp.Source.Type != envelope.TriggerAgent || resp.Source.Host == "" {
		t.Errorf("source = %+v, want this host, type agent, app command_processor", resp.Source)
	}
	r, err := envelope.DecodePayload[thread.Response](resp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Response, "Analyze this codebase") || r.Provider != "anthropic" || r.Model == nil || *r.Model != "claude-sonnet-4" {
		t.Errorf("response payload = %s, want an echo of the prompt", resp.Payload)
	}
	if r.TokensUsed == nil || *r.TokensUsed <= 0 || r.DurationMS == nil || *r.DurationMS < 0 {
		t.Errorf("tokens_used / duration_ms = %v / %v, want both filled in", r.TokensUsed, r.DurationMS)
	}
	if r.PromptID == nil || *r.PromptID != prompt.EventID.String() {
		t.Errorf("prompt_id = %v, want %s", r.PromptID, prompt.EventID)
	}
	if err := h.reg.Validate(thread.RoutingKeyResponse, resp.Payload); err != nil {
		t.Errorf("the response does not validate: %v", err)
	}

	eventually(t, "the command is counted", func() bool { return h.proc.Stats().Executed == 1 })
	ctx := context.Background()
	link, err := h.store.Lookup(ctx, resp.EventID)
	if err != nil {
		t.Fatalf("no correlation link for the response: %v", err)
	}
	if !reflect.DeepEqual(link.Parents, []uuid.UUID{prompt.EventID}) {
		t.Errorf("link parents = %v, want [%s]", link.Parents, prompt.EventID)
	}
	children, err := h.store.Children(ctx, prompt.EventID)
	if err != nil || !reflect.DeepEqual(children, []uuid.UUID{resp.EventID}) {
		t.Errorf("children of the prompt = %v (%v), want [%s]", children, err, resp.EventID)
	}
	if got := h.proc.Stats(); got != (cqrs.Stats{Executed: 1, Published: 1}) {
		t.Errorf("stats = %+v", got)
	}
	eventually(t, "the service queue is empty", func() bool { return h.broker.QueueLength(h.svc.QueueName()) == 0 })
}

func TestProcessor_redeliveredCommandRepublishesSameIDs(t *testing.T) {
	h := newHarness(t, harnessOptions{register: builtins})
	responses := h.watch(thread.RoutingKeyResponse)
	h.run()

	prompt := promptEnvelope(t, "same twice")
	h.publish(prompt)
	first := next(t, responses)
	h.publish(prompt)
	second := next(t, responses)
	if first.EventID != second.EventID {
		t.Errorf("response ids %s and %s differ for the same command", first.EventID, second.EventID)
	}
	other := promptEnvelope(t, "same twice")
	h.publish(other)
	if third := next(t, responses); third.EventID == first.EventID {
		t.Error("another command with the same payload got the same response id")
	}
}

// jobRun is a command payload of a test domain; runJob gives it behaviour
// that fails as the payload says.
type jobRun struct {
	Name string `json:"name"`
	Fail string `json:"fail,omitempty"`
}

type jobDone struct {
	Name    string `json:"name"`
	Attempt int    `json:"attempt"`
}

type jobState struct {
	mu        sync.Mutex
	attempts  map[uuid.UUID]int
	rollbacks map[uuid.UUID]int
}

func (s *jobState) attempt(id uuid.UUID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[id]++
	return s.attempts[id]
}

func (s *jobState) rolledBack(id uuid.UUID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rollbacks[id]
}

type runJob struct {
	jobRun
	state *jobState
}

func (c runJob) Execute(ctx context.Context, cc cqrs.CommandContext, events *cqrs.Collector) (int, error) {
	n := c.state.attempt(cc.EventID)
	if _, err := events.Add(jobDone{Name: c.Name, Attempt: n}); err != nil {
		return 0, err
	}
	switch c.Fail {
	case "once":
		if n == 1 {
			return 0, errors.New("flaky dependency")
		}
	case "permanent":
		return 0, envelope.Permanent(errors.New("this job can never run"))
	case "panic":
		panic("boom")
	case "bad_event":
		if _, err := events.Add(struct{ X int }{1}); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (c runJob) Rollback(ctx context.Context, cc cqrs.CommandContext) error {
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	c.state.rollbacks[cc.EventID]++
	return nil
}

func jobDomain(reg *domains.Registry) error {
	return errors.Join(
		domains.Register(reg, domains.Spec[jobRun]{RoutingKey: "test.job.run", Kind: domains.Command, Result: "test.job.done",
			Description: "Run a job.", Example: jobRun{Name: "nightly"}}),
		domains.Register(reg, domains.Spec[jobDone]{RoutingKey: "test.job.done", Description: "A job ran.", Example: jobDone{Name: "nightly", Attempt: 1}}))
}

func jobHarness(t *testing.T) (*harness, *jobState) {
	state := &jobState{attempts: map[uuid.UUID]int{}, rollbacks: map[uuid.UUID]int{}}
	h := newHarness(t, harnessOptions{
		registry: jobDomain,
		register: func(p *cqrs.Processor) error { return cqrs.Register(p, runJob{state: state}) },
	})
	return h, state
}

func jobEnvelope(t *testing.T, fail string) envelope.Envelope {
	t.Helper()
	env, err := envelope.New("test.job.run", jobRun{Name: "nightly", Fail: fail})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestProcessor_failedCommandIsRolledBackAndRedelivered(t *testing.T) {
	h, state := jobHarness(t)
	done := h.watch("test.job.done")
	h.run()

	cmd := jobEnvelope(t, "once")
	h.publish(cmd)
	ev := next(t, done)
	var got jobDone
	if err := json.Unmarshal(ev.Payload, &got); err != nil {
		t.Fatal(err)
	}
	if got.Attempt != 2 {
		t.Errorf("published the event of attempt %d, want only attempt 2's: a failed attempt publishes nothing", got.Attempt)
	}
	if ev.EventID != cqrs.SideEffectID("test.job.done", cmd.EventID, 0) {
		t.Errorf("event id %s is not the deterministic id", ev.EventID)
	}
	eventually(t, "the retry is counted", func() bool { return h.proc.Stats().Executed == 1 })
	if n := state.rolledBack(cmd.EventID); n != 1 {
		t.Errorf("Rollback called %d times, want once (after the failed attempt)", n)
	}
	if got := h.proc.Stats(); got.Failed != 1 || got.Published != 1 {
		t.Errorf("stats = %+v, want 1 failed attempt and 1 event published", got)
	}
	eventually(t, "the service queue is empty", func() bool { return h.broker.QueueLength(h.svc.QueueName()) == 0 })
}

func TestProcessor_permanentFailuresAreRolledBackNotRetried(t *testing.T) {
	for _, fail := range []string{"permanent", "panic", "bad_event"} {
		t.Run(fail, func(t *testing.T) {
			h, state := jobHarness(t)
			done := h.watch("test.job.done")
			h.run()

			cmd := jobEnvelope(t, fail)
			h.publish(cmd)
			eventually(t, "the failure is counted", func() bool { return h.proc.Stats().Failed == 1 })
			// bus.Service acks a permanent failure that no poison queue took
			// (and logs it): the queue drains, the command ran once.
			eventually(t, "the service queue is empty", func() bool { return h.broker.QueueLength(h.svc.QueueName()) == 0 })
			if n := state.rolledBack(cmd.EventID); n != 1 {
				t.Errorf("Rollback called %d times, want 1", n)
			}
			// Prove nothing was published: a later command's event is the
			// first one the observer sees.
			ok := jobEnvelope(t, "")
			h.publish(ok)
			if ev := next(t, done); !reflect.DeepEqual(ev.CorrelationIDs, []uuid.UUID{ok.EventID}) {
				t.Errorf("observer got an event caused by %v, want only the later command's", ev.CorrelationIDs)
			}
			eventually(t, "the later command is counted", func() bool { return h.proc.Stats().Executed == 1 })
			if got := h.proc.Stats(); got.Failed != 1 || got.Executed != 1 || got.Published != 1 {
				t.Errorf("stats = %+v", got)
			}
		})
	}
}

func TestProcessor_factsAreAckedCountedNotExecuted(t *testing.T) {
	h := newHarness(t, harnessOptions{
		register: builtins,
		config:   func(c *cqrs.ProcessorConfig) { c.Patterns = []string{"agent.thread.#"} },
	})
	responses := h.watch(thread.RoutingKeyResponse)
	h.run()

	// A fact bound through the Python-style pattern.
	fact, err := envelope.New(thread.RoutingKeyResponse, thread.Response{Provider: "anthropic", Response: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	h.publish(fact)
	eventually(t, "the fact is counted", func() bool { return h.proc.Stats().Facts == 1 })

	// A fact published under a command's routing key reaches the command's
	// handler; it is not executed either.
	msg, err := envelope.NewMessage(fact)
	if err != nil {
		t.Fatal(err)
	}
	raw := h.broker.Publisher(embedded.PublisherConfig{Marshaler: envelope.Codec{}})
	if err := raw.Publish(thread.RoutingKeyPrompt, msg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second fact is counted", func() bool { return h.proc.Stats().Facts == 2 })

	// A prompt matches both its own binding and the pattern: it runs once,
	// and its response, which comes back through the pattern, is a fact.
	next(t, responses) // the fact published above
	prompt := promptEnvelope(t, "once only")
	h.publish(prompt)
	if resp := next(t, responses); resp.CorrelationIDs[0] != prompt.EventID {
		t.Errorf("response caused by %v", resp.CorrelationIDs)
	}
	eventually(t, "the response comes back as a fact", func() bool { return h.proc.Stats().Facts == 3 })
	eventually(t, "the prompt is counted", func() bool { return h.proc.Stats().Executed == 1 })
	if got := h.proc.Stats(); got.Executed != 1 || got.Published != 1 || got.Rejected != 0 {
		t.Errorf("stats = %+v, want the prompt executed once", got)
	}
	eventually(t, "the service queue is empty", func() bool { return h.broker.QueueLength(h.svc.QueueName()) == 0 })
}

func TestProcessor_invalidAndUnexecutableCommandsAreRejected(t *testing.T) {
	h := newHarness(t, harnessOptions{
		registry: executeLLMPrompt,
		register: func(p *cqrs.Processor) error { return cqrs.Register(p, commands.AgentThreadPrompt{}) },
		config:   func(c *cqrs.ProcessorConfig) { c.Patterns = []string{"llm.#", "mystery.#"} },
	})
	h.run()

	invalid, err := envelope.New(thread.RoutingKeyPrompt, map[string]any{"provider": "anthropic", "tags": "not-a-list"})
	if err != nil {
		t.Fatal(err)
	}
	// llm.prompt is a registered command that nothing here executes.
	unexecutable, err := envelope.New("llm.prompt", map[string]any{"provider": "openai", "prompt": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := envelope.New("mystery.thing", map[string]any{"x": 1})
	if err != nil {
		t.Fatal(err)
	}
	h.publish(invalid, unexecutable, unknown)
	eventually(t, "both are rejected and the unknown one ignored", func() bool {
		s := h.proc.Stats()
		return s.Rejected == 2 && s.Unknown == 1
	})
	eventually(t, "the service queue is empty", func() bool { return h.broker.QueueLength(h.svc.QueueName()) == 0 })
	if got := h.proc.Stats(); got.Executed != 0 || got.Failed != 0 {
		t.Errorf("stats = %+v: nothing should have executed", got)
	}
}

type scriptedAgent struct {
	mu    sync.Mutex
	calls int
	errs  []error // the error of each call in turn; nil or past the end: answer
}

func (a *scriptedAgent) Respond(ctx context.Context, req commands.Request) (commands.Answer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.calls <= len(a.errs) && a.errs[a.calls-1] != nil {
		return commands.Answer{}, a.errs[a.calls-1]
	}
	return commands.Answer{Text: "ok: " + req.Prompt, TokensUsed: 3}, nil
}

func TestProcessor_agentFailureOutcomes(t *testing.T) {
	cases := []struct {
		name      string
		errs      []error
		wantType  string
		wantFails uint64
	}{
		{"final failure publishes agent.thread.error and acks", []error{&commands.AgentError{Code: "invalid_request", Err: errors.New("prompt too long")}}, thread.RoutingKeyError, 0},
		{"unmarked error is final", []error{errors.New("model refused")}, thread.RoutingKeyError, 0},
		{"transient failure is retried, then answered", []error{&commands.AgentError{Code: "rate_limit_error", Retryable: true, Err: errors.New("slow down")}}, thread.RoutingKeyResponse, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := &scriptedAgent{errs: tc.errs}
			h := newHarness(t, harnessOptions{register: func(p *cqrs.Processor) error { return commands.Register(p, agent) }})
			events := h.watch("agent.thread.*")
			h.run()

			prompt := promptEnvelope(t, "hello")
			h.publish(prompt)
			ev := next(t, events)
			if ev.EventType == thread.RoutingKeyPrompt {
				ev = next(t, events)
			}
			if ev.EventType != tc.wantType {
				t.Fatalf("outcome %s, want %s", ev.EventType, tc.wantType)
			}
			if !reflect.DeepEqual(ev.CorrelationIDs, []uuid.UUID{prompt.EventID}) || ev.AgentContext == nil {
				t.Errorf("outcome not linked to the prompt: %v, %+v", ev.CorrelationIDs, ev.AgentContext)
			}
			if tc.wantType == thread.RoutingKeyError {
				e, err := envelope.DecodePayload[thread.ErrorPayload](ev)
				if err != nil {
					t.Fatal(err)
				}
				if e.IsRetryable || e.ErrorMessage == "" || e.ErrorCode == nil || e.Provider != "anthropic" {
					t.Errorf("error payload = %s", ev.Payload)
				}
			}
			eventually(t, "the prompt is settled", func() bool { return h.proc.Stats().Executed == 1 })
			if got := h.proc.Stats().Failed; got != tc.wantFails {
				t.Errorf("failed attempts = %d, want %d", got, tc.wantFails)
			}
			eventually(t, "the service queue is empty", func() bool { return h.broker.QueueLength(h.svc.QueueName()) == 0 })
		})
	}
}

func TestProcessor_decoratorsWrapEveryCommand(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	h := newHarness(t, harnessOptions{
		registry: executeLLMPrompt,
		register: func(p *cqrs.Processor) error {
			return errors.Join(builtins(p), cqrs.Register(p, commands.LLMPrompt{}))
		},
		config: func(c *cqrs.ProcessorConfig) {
			c.Decorators = []cqrs.Decorator{func(next cqrs.HandlerFunc) cqrs.HandlerFunc {
				return func(ctx context.Context, ex *cqrs.Execution) error {
					err := next(ctx, ex)
					mu.Lock()
					defer mu.Unlock()
					if _, ok := ex.Command.(commands.LLMPrompt); ok && len(ex.Published) == 1 {
						seen = append(seen, ex.Context.EventType+"→"+ex.Published[0].EventType)
					}
					if r, ok := ex.Result.(*thread.Response); ok && r != nil {
						seen = append(seen, ex.Context.EventType+"→"+r.Response)
					}
					return err
				}
			}}
		},
	})
	h.run()
	llmPrompt, err := envelope.New("llm.prompt", map[string]any{"provider": "openai", "prompt": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	h.publish(promptEnvelope(t, "hey"), llmPrompt)
	eventually(t, "both commands executed", func() bool { return h.proc.Stats().Executed == 2 })
	mu.Lock()
	defer mu.Unlock()
	want := map[string]bool{"llm.prompt→llm.response": true, "agent.thread.prompt→Echoing your prompt: hey": true}
	if len(seen) != 2 || !want[seen[0]] || !want[seen[1]] {
		t.Errorf("decorator saw %v, want %v", seen, want)
	}
}

func TestRegister_refusesWhatIsNotACommand(t *testing.T) {
	h := newHarness(t, harnessOptions{register: builtins})
	if err := commands.Register(h.proc, nil); err == nil {
		t.Error("registering the same commands twice was accepted")
	}
	if err := cqrs.Register(h.proc, notACommand{}); err == nil || !strings.Contains(err.Error(), "not a command") {
		t.Errorf("registering a fact as a command: err = %v", err)
	}
	if err := cqrs.Register(h.proc, unregistered{}); !errors.Is(err, domains.ErrUnknownEventType) {
		t.Errorf("registering an unknown type: err = %v, want ErrUnknownEventType", err)
	}
}

type notACommand struct{ thread.Response }

func (notACommand) Execute(context.Context, cqrs.CommandContext, *cqrs.Collector) (any, error) {
	return nil, nil
}

type unregistered struct{ X int }

func (unregistered) Execute(context.Context, cqrs.CommandContext, *cqrs.Collector) (any, error) {
	return nil, nil
}
