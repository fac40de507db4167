package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
)

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func embeddedStore(t testing.TB) *correlation.EmbeddedStore {
	t.Helper()
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		t.Fatalf("correlation.NewEmbeddedStore: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func newRecorder(t testing.TB, w correlation.Writer, cfg correlation.RecorderConfig) *correlation.Recorder {
	t.Helper()
	rec, err := correlation.NewRecorder(w, cfg)
	if err != nil {
		t.Fatalf("NewRecorder: %v", err)
	}
	t.Cleanup(func() { _ = rec.Close(context.Background()) })
	return rec
}

// notifyingRecorder passes links on and then reports each Record call, so a
// test knows when a link was written (or counted as failed) without polling.
type notifyingRecorder struct {
	next  middleware.LinkRecorder
	calls chan []correlation.Link
}

func notifying(next middleware.LinkRecorder) *notifyingRecorder {
	return &notifyingRecorder{next: next, calls: make(chan []correlation.Link, 128)}
}

func (n *notifyingRecorder) Record(ctx context.Context, links ...correlation.Link) {
	if n.next != nil {
		n.next.Record(ctx, links...)
	}
	n.calls <- links
}

func (n *notifyingRecorder) next1(t *testing.T) []correlation.Link {
	t.Helper()
	select {
	case links := <-n.calls:
		return links
	case <-time.After(waitFor):
		t.Fatal("no links were recorded")
		return nil
	}
}

func (n *notifyingRecorder) none(t *testing.T) {
	t.Helper()
	select {
	case links := <-n.calls:
		t.Errorf("recorded %v, want nothing", links)
	default:
	}
}

// causationRouter is a plain Watermill router on GoChannel: its handler
// reads topic "in" and returns what handle returns to topic "out", through
// Causation and a router-level RecordingPublisherDecorator.
func causationRouter(t *testing.T, rec middleware.LinkRecorder, handle message.HandlerFunc) (in message.Publisher, out <-chan *message.Message) {
	t.Helper()
	logger := watermill.NopLogger{}
	pubSub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16}, logger)
	t.Cleanup(func() { _ = pubSub.Close() })
	outCh, err := pubSub.Subscribe(context.Background(), "out")
	if err != nil {
		t.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: waitFor}, logger)
	if err != nil {
		t.Fatal(err)
	}
	router.AddPublisherDecorators(middleware.RecordingPublisherDecorator(rec))
	router.AddMiddleware(middleware.Causation)
	router.AddHandler("respond", "in", pubSub, "out", pubSub, handle)
	startRouter(t, router)
	return pubSub, outCh
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case msg := <-ch:
		msg.Ack()
		return msg
	case <-time.After(waitFor):
		t.Fatal("nothing was published")
		return nil
	}
}

// buildMessages is eventMessage for handlers, which must not call t.Fatal.
func buildMessages(eventType, payload string, opts ...envelope.Option) ([]*message.Message, error) {
	env, err := envelope.New(eventType, json.RawMessage(payload), opts...)
	if err != nil {
		return nil, err
	}
	msg, err := envelope.NewMessage(env)
	if err != nil {
		return nil, err
	}
	return []*message.Message{msg}, nil
}

func idsOf(msg *message.Message) []uuid.UUID { return envelope.CorrelationIDs(msg) }

func TestCausation_returnedMessageIsLinkedAndRecorded(t *testing.T) {
	store := embeddedStore(t)
	rec := notifying(newRecorder(t, store, correlation.RecorderConfig{}))
	in, out := causationRouter(t, rec, func(msg *message.Message) ([]*message.Message, error) {
		return buildMessages("agent.thread.response", `{"provider":"anthropic","response":"echo"}`,
			envelope.WithSource(envelope.Source{Host: "h", Type: envelope.TriggerAgent, App: "echo-bot"}))
	})
	agent := `{"type":"claude-code","name":"cc"}`
	prompt := eventMessage(t, "agent.thread.prompt", validPrompt,
		envelope.WithAgentContext(&envelope.AgentContext{Type: envelope.AgentClaudeCode, Name: "cc"}))
	promptID := uuid.MustParse(prompt.UUID)
	if err := in.Publish("in", prompt); err != nil {
		t.Fatal(err)
	}

	got := receive(t, out)
	if ids := idsOf(got); !slices.Equal(ids, []uuid.UUID{promptID}) {
		t.Errorf("published correlation ids = %v, want [%s]", ids, promptID)
	}
	var ac map[string]any
	if err := json.Unmarshal([]byte(got.Metadata.Get(envelope.MetaAgentContext)), &ac); err != nil || ac["type"] != "claude-code" || ac["name"] != "cc" {
		t.Errorf("agent context = %s, want the prompt's %s", got.Metadata.Get(envelope.MetaAgentContext), agent)
	}
	links := rec.next1(t)
	if len(links) != 1 || links[0].Child.String() != got.UUID {
		t.Fatalf("recorded %+v, want one link for %s", links, got.UUID)
	}

	ctx := testContext(t)
	child := uuid.MustParse(got.UUID)
	parents, err := store.Parents(ctx, child)
	if err != nil || !slices.Equal(parents, []uuid.UUID{promptID}) {
		t.Errorf("Parents(response) = %v, %v; want [%s]", parents, err, promptID)
	}
	children, err := store.Children(ctx, promptID)
	if err != nil || !slices.Equal(children, []uuid.UUID{child}) {
		t.Errorf("Children(prompt) = %v, %v; want [%s]", children, err, child)
	}
	md, err := store.Metadata(ctx, child)
	if err != nil || md["event_type"] != "agent.thread.response" || md["source_app"] != "echo-bot" {
		t.Errorf("Metadata(response) = %v, %v; want event_type and source_app", md, err)
	}
}

func TestCausation_keepsExistingCorrelationAndAgentContext(t *testing.T) {
	store := embeddedStore(t)
	rec := notifying(newRecorder(t, store, correlation.RecorderConfig{}))
	other := uuid.New()
	in, out := causationRouter(t, rec, func(msg *message.Message) ([]*message.Message, error) {
		return buildMessages("agent.thread.response", `{"provider":"p","response":"r"}`,
			envelope.WithCorrelationIDs(other),
			envelope.WithAgentContext(&envelope.AgentContext{Type: envelope.AgentLetta}))
	})
	prompt := eventMessage(t, "agent.thread.prompt", validPrompt,
		envelope.WithAgentContext(&envelope.AgentContext{Type: envelope.AgentClaudeCode}))
	if err := in.Publish("in", prompt); err != nil {
		t.Fatal(err)
	}
	got := receive(t, out)
	if ids := idsOf(got); !slices.Equal(ids, []uuid.UUID{other}) {
		t.Errorf("correlation ids = %v, want the handler's own [%s]", ids, other)
	}
	if ac := got.Metadata.Get(envelope.MetaAgentContext); !strings.Contains(ac, `"letta"`) {
		t.Errorf("agent context = %s, want the handler's letta context", ac)
	}
	links := rec.next1(t)
	if len(links) != 1 || !slices.Equal(links[0].Parents, []uuid.UUID{other}) {
		t.Errorf("recorded %+v, want one link to %s", links, other)
	}
}

func TestCausation_forwardedMessageIsNotItsOwnCause(t *testing.T) {
	rec := notifying(nil)
	in, out := causationRouter(t, rec, func(msg *message.Message) ([]*message.Message, error) {
		return []*message.Message{msg}, nil
	})
	msg := eventMessage(t, "agent.thread.prompt", validPrompt)
	if err := in.Publish("in", msg); err != nil {
		t.Fatal(err)
	}
	got := receive(t, out)
	if ids := idsOf(got); len(ids) != 0 {
		t.Errorf("a forwarded event got correlation ids %v, want none", ids)
	}
	rec.none(t)
}

// A handler that publishes itself, with bus.Bus.Publish and the context it
// was given, is linked when the bus's publisher records.
func TestCausation_busPublishWithHandlerContextIsRecorded(t *testing.T) {
	store := embeddedStore(t)
	rec := notifying(newRecorder(t, store, correlation.RecorderConfig{}))
	broker := embedded.New(nil)
	t.Cleanup(func() { _ = broker.Close() })
	cfg, err := bus.LoadConfig(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	b := bus.NewEmbeddedBus(cfg, broker, nil)
	b.DecoratePublisher(func(p message.Publisher) message.Publisher {
		return middleware.NewRecordingPublisher(p, rec)
	})

	published := make(chan uuid.UUID, 1)
	in, _ := causationRouter(t, nil, func(msg *message.Message) ([]*message.Message, error) {
		env, err := envelope.New("agent.thread.response", json.RawMessage(`{"provider":"p","response":"r"}`))
		if err != nil {
			return nil, err
		}
		if err := b.Publish(msg.Context(), env); err != nil {
			return nil, err
		}
		published <- env.EventID
		return nil, nil
	})
	prompt := eventMessage(t, "agent.thread.prompt", validPrompt)
	if err := in.Publish("in", prompt); err != nil {
		t.Fatal(err)
	}
	links := rec.next1(t)
	var child uuid.UUID
	select {
	case child = <-published:
	case <-time.After(waitFor):
		t.Fatal("the handler did not publish")
	}
	promptID := uuid.MustParse(prompt.UUID)
	if len(links) != 1 || links[0].Child != child || !slices.Equal(links[0].Parents, []uuid.UUID{promptID}) {
		t.Fatalf("recorded %+v, want %s caused by %s", links, child, promptID)
	}
	children, err := store.Children(testContext(t), promptID)
	if err != nil || !slices.Equal(children, []uuid.UUID{child}) {
		t.Errorf("Children(prompt) = %v, %v; want [%s]", children, err, child)
	}
}

// discardPublisher accepts everything, or fails with err.
type discardPublisher struct{ err error }

func (p discardPublisher) Publish(string, ...*message.Message) error { return p.err }
func (p discardPublisher) Close() error                              { return nil }

func TestRecordingPublisher_stampsCauseFromContext(t *testing.T) {
	rec := notifying(nil)
	pub := middleware.NewRecordingPublisher(discardPublisher{}, rec)
	cause := uuid.New()
	msg := eventMessage(t, "llm.response", `{"provider":"p","response":"r"}`)
	msg.SetContext(envelope.WithCause(context.Background(), cause))
	if err := pub.Publish("llm.response", msg); err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(msg); !slices.Equal(ids, []uuid.UUID{cause}) {
		t.Errorf("correlation ids = %v, want [%s]", ids, cause)
	}
	links := rec.next1(t)
	if len(links) != 1 || links[0].Child.String() != msg.UUID || !slices.Equal(links[0].Parents, []uuid.UUID{cause}) {
		t.Errorf("recorded %+v", links)
	}
	if links[0].Metadata["event_type"] != "llm.response" {
		t.Errorf("link metadata = %v, want event_type llm.response", links[0].Metadata)
	}
}

func TestRecordingPublisher_oneRecordCallPerPublish(t *testing.T) {
	rec := notifying(nil)
	pub := middleware.NewRecordingPublisher(discardPublisher{}, rec, middleware.RecordingPublisherConfig{
		LinkMetadata: func(p middleware.LinkMetadataParams) map[string]any {
			return map[string]any{"topic": p.Topic}
		},
	})
	parent := uuid.New()
	var msgs []*message.Message
	for range 3 {
		msgs = append(msgs, eventMessage(t, "artifact.created", `{"action":"created","kind":"doc","uri":"u"}`, envelope.WithCorrelationIDs(parent)))
	}
	orphan := eventMessage(t, "artifact.created", `{"action":"created","kind":"doc","uri":"u"}`)
	if err := pub.Publish("artifact.created", append(msgs, orphan)...); err != nil {
		t.Fatal(err)
	}
	links := rec.next1(t)
	if len(links) != 3 {
		t.Fatalf("one Record call got %d links, want 3 (the message without parents records nothing)", len(links))
	}
	for i, l := range links {
		if l.Child.String() != msgs[i].UUID || l.Metadata["topic"] != "artifact.created" {
			t.Errorf("link %d = %+v", i, l)
		}
	}
	rec.none(t)

	if err := pub.Publish("artifact.created", orphan); err != nil {
		t.Fatal(err)
	}
	rec.none(t)
}

func TestRecordingPublisher_failedPublishRecordsNothing(t *testing.T) {
	store := embeddedStore(t)
	rec := notifying(newRecorder(t, store, correlation.RecorderConfig{}))
	boom := errors.New("broker refused")
	pub := middleware.NewRecordingPublisher(discardPublisher{err: boom}, rec)
	parent := uuid.New()
	msg := eventMessage(t, "llm.response", `{"provider":"p","response":"r"}`, envelope.WithCorrelationIDs(parent))
	if err := pub.Publish("llm.response", msg); !errors.Is(err, boom) {
		t.Fatalf("Publish error = %v, want the publisher's %v", err, boom)
	}
	rec.none(t)
	if children, err := store.Children(testContext(t), parent); err != nil || len(children) != 0 {
		t.Errorf("Children(parent) = %v, %v; want none", children, err)
	}
}

func TestRecordingPublisher_redisDownNeverFailsTheBus(t *testing.T) {
	store := embeddedStore(t)
	recorder := newRecorder(t, store, correlation.RecorderConfig{Timeout: 500 * time.Millisecond})
	rec := notifying(recorder)
	in, out := causationRouter(t, rec, func(msg *message.Message) ([]*message.Message, error) {
		return buildMessages("agent.thread.response", `{"provider":"p","response":"r"}`)
	})
	store.Server().Close() // Redis goes away

	prompt := eventMessage(t, "agent.thread.prompt", validPrompt)
	if err := in.Publish("in", prompt); err != nil {
		t.Fatal(err)
	}
	got := receive(t, out) // handled and published all the same
	if ids := idsOf(got); len(ids) != 1 || ids[0].String() != prompt.UUID {
		t.Errorf("correlation ids = %v, want [%s]", ids, prompt.UUID)
	}
	rec.next1(t)
	if recorder.Failed() != 1 || recorder.Recorded() != 0 {
		t.Errorf("Failed = %d, Recorded = %d; want 1, 0", recorder.Failed(), recorder.Recorded())
	}

	// A direct publish succeeds too.
	pub := middleware.NewRecordingPublisher(discardPublisher{}, rec)
	if err := pub.Publish("x", eventMessage(t, "llm.response", `{"provider":"p","response":"r"}`, envelope.WithCorrelationIDs(uuid.New()))); err != nil {
		t.Errorf("Publish with Redis down: %v", err)
	}
	rec.next1(t)
	if recorder.Failed() != 2 {
		t.Errorf("Failed = %d, want 2", recorder.Failed())
	}
}

func TestRecordingPublisher_concurrentPublishesRecordEveryLink(t *testing.T) {
	store := embeddedStore(t)
	rec := newRecorder(t, store, correlation.RecorderConfig{Batching: true})
	pubSub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	t.Cleanup(func() { _ = pubSub.Close() })
	pub := middleware.NewRecordingPublisher(pubSub, rec)

	parent := uuid.New()
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			msg, err := envelope.NewMessage(mustEnvelope(t, "llm.response", `{"provider":"p","response":"r"}`))
			if err != nil {
				errs <- err
				return
			}
			msg.SetContext(envelope.WithCause(context.Background(), parent))
			errs <- pub.Publish("llm.response", msg)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx := testContext(t)
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if rec.Recorded() != n || rec.Failed() != 0 {
		t.Errorf("Recorded = %d, Failed = %d; want %d, 0", rec.Recorded(), rec.Failed(), n)
	}
	children, err := store.Children(ctx, parent)
	if err != nil || len(children) != n {
		t.Errorf("Children(parent) has %d ids (err %v), want %d", len(children), err, n)
	}
}

func mustEnvelope(t testing.TB, eventType, payload string) envelope.Envelope {
	env, err := envelope.New(eventType, json.RawMessage(payload))
	if err != nil {
		t.Errorf("NewEnvelope: %v", err)
	}
	return env
}

// A Go service and a Python service share Redis: the link of a Go-published
// child of a Python-published parent is in the Python tracker's keys.
func TestRecordingPublisher_pythonLayoutOnRealRedis(t *testing.T) {
	addr := testenv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	ctx := testContext(t)
	if err := client.Ping(ctx).Err(); err != nil {
		if testenv.Required() {
			t.Fatalf("redis at %s does not answer PING: %v", addr, err)
		}
		t.Skipf("redis at %s does not answer PING: %v", addr, err)
	}
	store, err := correlation.NewRedisStore(client, correlation.RedisConfig{}) // the Python layout
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t, store, correlation.RecorderConfig{})

	// A parent id as a Python producer makes it: uuid5 of a free-form key.
	parent := envelope.DeterministicIDFromKey("fireflies.transcript.upload", "meeting_"+uuid.NewString())
	child := eventMessage(t, "fireflies.transcript.ready", `{}`)
	forward := "bloodbank:correlation:forward:" + child.UUID
	reverse := "bloodbank:correlation:reverse:" + parent.String()
	t.Cleanup(func() { client.Del(context.Background(), forward, reverse) })

	child.SetContext(envelope.WithCause(context.Background(), parent))
	if err := middleware.NewRecordingPublisher(discardPublisher{}, rec).Publish("fireflies.transcript.ready", child); err != nil {
		t.Fatal(err)
	}
	if rec.Recorded() != 1 {
		t.Fatalf("Recorded = %d (Failed = %d), want 1", rec.Recorded(), rec.Failed())
	}

	raw, err := client.Get(ctx, forward).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", forward, err)
	}
	var fw struct {
		ParentEventIDs []string       `json:"parent_event_ids"`
		CreatedAt      string         `json:"created_at"`
		Metadata       map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(raw), &fw); err != nil {
		t.Fatalf("forward value %s: %v", raw, err)
	}
	if !slices.Equal(fw.ParentEventIDs, []string{parent.String()}) || fw.CreatedAt == "" || fw.Metadata["event_type"] != "fireflies.transcript.ready" {
		t.Errorf("forward value = %s, want parent_event_ids [%s], created_at, metadata.event_type", raw, parent)
	}
	members, err := client.SMembers(ctx, reverse).Result()
	if err != nil || !slices.Equal(members, []string{child.UUID}) {
		t.Errorf("SMEMBERS %s = %v, %v; want [%s]", reverse, members, err, child.UUID)
	}
	if ttl := client.TTL(ctx, reverse).Val(); ttl <= 0 {
		t.Errorf("TTL %s = %s, want the 30-day TTL", reverse, ttl)
	}
}

// BenchmarkRecordingPublisher measures publishing one message with one
// parent through the decorator (the decorated publisher discards it).
// "recorded" writes every link to the embedded store through a batching
// Recorder, flushing every 1024 publishes so that no link is shed: the
// sustained cost per link, Redis round trips included. "decorator" records
// into a no-op LinkRecorder: the decorator's own cost.
func BenchmarkRecordingPublisher(b *testing.B) {
	msg := eventMessage(b, "agent.thread.response", `{"provider":"p","response":"r"}`, envelope.WithCorrelationIDs(uuid.New()))
	b.Run("recorded", func(b *testing.B) {
		store := embeddedStore(b)
		rec := newRecorder(b, store, correlation.RecorderConfig{Batching: true})
		pub := middleware.NewRecordingPublisher(discardPublisher{}, rec)
		ctx := context.Background()
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := pub.Publish("agent.thread.response", msg); err != nil {
				b.Fatal(err)
			}
			if n++; n%1024 == 0 {
				if err := rec.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := rec.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if rec.Failed() != 0 {
			b.Errorf("%d links failed", rec.Failed())
		}
	})
	b.Run("decorator", func(b *testing.B) {
		pub := middleware.NewRecordingPublisher(discardPublisher{}, nopRecorder{})
		b.ReportAllocs()
		for b.Loop() {
			if err := pub.Publish("agent.thread.response", msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type nopRecorder struct{}

func (nopRecorder) Record(context.Context, ...correlation.Link) {}

func TestRecordingPublisher_neverLinksAnEventToItselfOrARawBody(t *testing.T) {
	rec := notifying(nil)
	pub := middleware.NewRecordingPublisher(discardPublisher{}, rec)

	// A handler parking or forwarding the message it handles publishes it
	// with its own id as the cause.
	self := eventMessage(t, "llm.response", `{"provider":"p","response":"r"}`)
	self.SetContext(envelope.WithCause(context.Background(), uuid.MustParse(self.UUID)))
	// A parked or replayed event travels as its original body.
	raw := eventMessage(t, "llm.response", `{"provider":"p","response":"r"}`, envelope.WithCorrelationIDs(uuid.New()))
	raw.Metadata.Set(envelope.MetaRawBody, "true")
	raw.SetContext(envelope.WithCause(context.Background(), uuid.New()))

	if err := pub.Publish("llm.response", self, raw); err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(self); len(ids) != 0 {
		t.Errorf("an event was made its own cause: %v", ids)
	}
	rec.none(t)
}
