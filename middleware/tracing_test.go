package middleware_test

// Tests of Tracing. Helper names start with "tr" so that they cannot
// collide with the helpers of the package's other tests.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/middleware"
)

// trSetup returns a Tracing on an SDK provider whose ended spans the
// recorder holds.
func trSetup(t testing.TB) (*middleware.Tracing, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return middleware.NewTracing(middleware.TracingConfig{TracerProvider: tp}), rec
}

// trCapture is a publisher that keeps what it is given, or fails with err.
type trCapture struct {
	mu   sync.Mutex
	msgs []*message.Message
	err  error
}

func (p *trCapture) Publish(_ string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.msgs = append(p.msgs, msgs...)
	return nil
}
func (p *trCapture) Close() error { return nil }

func (p *trCapture) last(t *testing.T) *message.Message {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.msgs) == 0 {
		t.Fatal("nothing was published")
	}
	return p.msgs[len(p.msgs)-1]
}

// trEvent builds the message of an event of type eventType.
func trEvent(t testing.TB, eventType string, payload string, opts ...envelope.Option) *message.Message {
	t.Helper()
	env, err := envelope.New(eventType, []byte(payload), opts...)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := envelope.NewMessage(env)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// trOverTheWire sends msg through the AMQP wire codec, as RabbitMQ would
// deliver it under routingKey, and returns the AMQP headers it had.
func trOverTheWire(t *testing.T, msg *message.Message, routingKey string) (*message.Message, amqp091.Table) {
	t.Helper()
	pub, err := envelope.Codec{}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := envelope.Codec{}.Unmarshal(amqp091.Delivery{
		Body: pub.Body, MessageId: pub.MessageId, RoutingKey: routingKey, Headers: pub.Headers,
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, pub.Headers
}

// trSpan finds the one ended span named name.
func trSpan(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one span %q, got %d among %q", name, len(found), names)
	}
	return found[0]
}

// trAttr returns the value of the span's attribute key, as text.
func trAttr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}

func trWantAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[attribute.Key]string) {
	t.Helper()
	for k, v := range want {
		if got := trAttr(s, k); got != v {
			t.Errorf("span %q: %s = %q, want %q", s.Name(), k, got, v)
		}
	}
}

func trWantChild(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("span %q is in trace %s, want %s (that of %q)", child.Name(),
			child.SpanContext().TraceID(), parent.SpanContext().TraceID(), parent.Name())
	}
	if child.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("parent of %q is span %s, want %s (%q)", child.Name(), child.Parent().SpanID(),
			parent.SpanContext().SpanID(), parent.Name())
	}
}

// The whole path of the issue: a prompt is published, crosses the wire
// codec (the trace context as AMQP headers), is handled, and the handler
// publishes a response: one trace, publish → handle → publish.
func TestTracing_publishHandlePublishIsOneTraceAcrossTheWire(t *testing.T) {
	tr, rec := trSetup(t)
	out := &trCapture{}
	pub := tr.DecoratePublisher(out)

	prompt := trEvent(t, "agent.thread.prompt", `{"provider":"anthropic","prompt":"hi"}`)
	if err := pub.Publish("agent.thread.prompt", prompt); err != nil {
		t.Fatal(err)
	}
	delivered, headers := trOverTheWire(t, out.last(t), "agent.thread.prompt")
	tp, _ := headers[middleware.HeaderTraceParent].(string)
	if !strings.HasPrefix(tp, "00-") || len(tp) != 55 {
		t.Fatalf("AMQP header traceparent = %q, want a W3C traceparent", tp)
	}

	var responseID string
	handler := tr.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		ctx := envelope.WithCause(msg.Context(), uuid.MustParse(msg.UUID))
		resp := trEvent(t, "agent.thread.response", `{"provider":"anthropic","response":"echo: hi"}`,
			envelope.WithCorrelationIDs(uuid.MustParse(msg.UUID)))
		responseID = resp.UUID
		resp.SetContext(ctx)
		return nil, pub.Publish("agent.thread.response", resp)
	})
	if _, err := handler(delivered); err != nil {
		t.Fatal(err)
	}

	publishPrompt := trSpan(t, rec, "publish agent.thread.prompt")
	handle := trSpan(t, rec, "handle agent.thread.prompt")
	publishResponse := trSpan(t, rec, "publish agent.thread.response")
	if publishPrompt.Parent().IsValid() {
		t.Errorf("publish prompt has parent %s, want a root span", publishPrompt.Parent().SpanID())
	}
	trWantChild(t, handle, publishPrompt)
	if !handle.Parent().IsRemote() {
		t.Error("handle span's parent is not remote: the context did not come from the headers")
	}
	trWantChild(t, publishResponse, handle)

	if got := []trace.SpanKind{publishPrompt.SpanKind(), handle.SpanKind(), publishResponse.SpanKind()}; got[0] != trace.SpanKindProducer || got[1] != trace.SpanKindConsumer || got[2] != trace.SpanKindProducer {
		t.Errorf("span kinds = %v, want producer, consumer, producer", got)
	}
	trWantAttrs(t, publishPrompt, map[attribute.Key]string{
		"messaging.system":                           "rabbitmq",
		"messaging.operation.type":                   "send",
		"messaging.operation.name":                   "publish",
		"messaging.destination.name":                 envelope.DefaultExchange,
		"messaging.rabbitmq.destination.routing_key": "agent.thread.prompt",
		"messaging.message.id":                       prompt.UUID,
		middleware.AttrEventID:                       prompt.UUID,
		middleware.AttrEventType:                     "agent.thread.prompt",
	})
	trWantAttrs(t, handle, map[attribute.Key]string{
		"messaging.operation.type":                   "process",
		"messaging.operation.name":                   "handle",
		"messaging.rabbitmq.destination.routing_key": "agent.thread.prompt",
		middleware.AttrEventID:                       prompt.UUID,
		middleware.AttrEventType:                     "agent.thread.prompt",
	})
	trWantAttrs(t, publishResponse, map[attribute.Key]string{
		middleware.AttrEventID:        responseID,
		middleware.AttrCorrelationIDs: `["` + prompt.UUID + `"]`,
	})
}

// What a handler returns to a plain Watermill router (GoChannel, no bus) is
// published by the router's decorated publisher as the handle span's child.
func TestTracing_routerReturnedMessagesContinueTheTrace(t *testing.T) {
	tr, rec := trSetup(t)
	logger := watermill.NopLogger{}
	in := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, logger)
	out := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1}, logger)
	t.Cleanup(func() { _ = in.Close(); _ = out.Close() })
	answers, err := out.Subscribe(context.Background(), "agent.thread.response")
	if err != nil {
		t.Fatal(err)
	}

	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	router.AddPublisherDecorators(tr.PublisherDecorator())
	router.AddMiddleware(tr.Middleware, middleware.Causation)
	router.AddHandler("answer_prompts", "agent.thread.prompt", in, "agent.thread.response", out,
		func(msg *message.Message) ([]*message.Message, error) {
			return []*message.Message{trEvent(t, "agent.thread.response", `{"provider":"p","response":"r"}`)}, nil
		})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-router.Running()

	// The prompt is published through the decorator too, so it carries a
	// traceparent; GoChannel hands over metadata as is.
	if err := tr.DecoratePublisher(in).Publish("agent.thread.prompt", trEvent(t, "agent.thread.prompt", `{"provider":"p","prompt":"q"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-answers:
		m.Ack()
		if m.Metadata.Get(middleware.HeaderTraceParent) == "" {
			t.Error("the returned message carries no traceparent")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
	// The handle span ends when the handler returns, before the router
	// publishes; the publish span ends after. Wait for all three.
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.Ended()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	handle := trSpan(t, rec, "handle agent.thread.prompt")
	trWantChild(t, handle, trSpan(t, rec, "publish agent.thread.prompt"))
	trWantChild(t, trSpan(t, rec, "publish agent.thread.response"), handle)
	trWantAttrs(t, handle, map[attribute.Key]string{middleware.AttrHandler: "answer_prompts"})
}

func TestTracing_handleRecordsTheHandlersError(t *testing.T) {
	tests := []struct {
		name, wantType string
		err            error
	}{
		{"permanent", "invalid", &envelope.PermanentError{Kind: envelope.KindInvalid, Err: errors.New("payload.tags: expected array, got string")}},
		{"wrapped plain error", "*errors.errorString", fmt.Errorf("cannot ingest: %w", errors.New("vector store down"))},
		{"retries gave up", "*errors.errorString", &middleware.RetryError{Exhausted: true, Err: fmt.Errorf("cannot ingest: %w", errors.New("vector store down"))}},
		{"panic", "*middleware.PanicError", fmt.Errorf("attempt 1: %w", &middleware.PanicError{Value: "boom"})},
		{"joined", "*middleware.PanicError", errors.Join(&middleware.PanicError{Value: "boom"}, errors.New("and another"))},
		{"timeout", "timeout", fmt.Errorf("cannot ingest: %w", context.DeadlineExceeded)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, rec := trSetup(t)
			h := tr.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, tt.err })
			if _, err := h(trEvent(t, "agent.thread.prompt", `{}`)); err != tt.err {
				t.Fatalf("middleware returned %v, want the handler's error unchanged", err)
			}
			s := trSpan(t, rec, "handle agent.thread.prompt")
			if s.Status().Code != codes.Error || s.Status().Description != tt.err.Error() {
				t.Errorf("status = %v %q, want Error %q", s.Status().Code, s.Status().Description, tt.err)
			}
			trWantAttrs(t, s, map[attribute.Key]string{"error.type": tt.wantType})
			if len(s.Events()) != 1 || s.Events()[0].Name != "exception" {
				t.Errorf("events = %v, want one exception", s.Events())
			}
		})
	}
}

func TestTracing_handlePanicEndsTheSpanAndPanicsOn(t *testing.T) {
	tr, rec := trSetup(t)
	h := tr.Middleware(func(*message.Message) ([]*message.Message, error) { panic("boom") })
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the handler's panic", v)
			}
		}()
		_, _ = h(trEvent(t, "agent.thread.prompt", `{}`))
	}()
	s := trSpan(t, rec, "handle agent.thread.prompt")
	if s.Status().Code != codes.Error || s.Status().Description != "panic: boom" {
		t.Errorf("status = %v %q, want Error \"panic: boom\"", s.Status().Code, s.Status().Description)
	}
}

func TestTracing_executeSpan(t *testing.T) {
	t.Run("child of the handle span", func(t *testing.T) {
		tr, rec := trSetup(t)
		pub := tr.DecoratePublisher(&trCapture{})
		prompt := trEvent(t, "agent.thread.prompt", `{}`)
		h := tr.Middleware(func(msg *message.Message) ([]*message.Message, error) {
			return nil, tr.Execute(msg.Context(), middleware.ExecuteParams{Command: "agent.thread.prompt", Message: msg},
				func(ctx context.Context) error {
					resp := trEvent(t, "agent.thread.response", `{}`)
					resp.SetContext(ctx)
					return pub.Publish("agent.thread.response", resp)
				})
		})
		if _, err := h(prompt); err != nil {
			t.Fatal(err)
		}
		handle := trSpan(t, rec, "handle agent.thread.prompt")
		execute := trSpan(t, rec, "execute agent.thread.prompt")
		trWantChild(t, execute, handle)
		trWantChild(t, trSpan(t, rec, "publish agent.thread.response"), execute)
		if execute.SpanKind() != trace.SpanKindInternal {
			t.Errorf("execute span kind = %v, want internal", execute.SpanKind())
		}
		trWantAttrs(t, execute, map[attribute.Key]string{
			middleware.AttrCommand:   "agent.thread.prompt",
			middleware.AttrEventID:   prompt.UUID,
			middleware.AttrEventType: "agent.thread.prompt",
		})
	})

	t.Run("without a handle span, the delivery's consumer span", func(t *testing.T) {
		tr, rec := trSetup(t)
		out := &trCapture{}
		if err := tr.DecoratePublisher(out).Publish("agent.thread.prompt", trEvent(t, "agent.thread.prompt", `{}`)); err != nil {
			t.Fatal(err)
		}
		delivered, _ := trOverTheWire(t, out.last(t), "agent.thread.prompt")
		wantErr := errors.New("model unavailable")
		err := tr.Execute(context.Background(), middleware.ExecuteParams{
			Command: "agent.thread.prompt", Message: delivered,
			Attributes: []attribute.KeyValue{attribute.String("agent", "echo")},
		}, func(context.Context) error { return wantErr })
		if err != wantErr {
			t.Fatalf("Execute returned %v, want fn's error", err)
		}
		execute := trSpan(t, rec, "execute agent.thread.prompt")
		trWantChild(t, execute, trSpan(t, rec, "publish agent.thread.prompt"))
		if execute.Status().Code != codes.Error {
			t.Errorf("status = %v, want Error", execute.Status().Code)
		}
		if execute.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("execute span kind = %v, want consumer: it processes the delivery", execute.SpanKind())
		}
		trWantAttrs(t, execute, map[attribute.Key]string{
			"agent":                                      "echo",
			middleware.AttrEventID:                       delivered.UUID,
			middleware.AttrCommand:                       "agent.thread.prompt",
			"messaging.operation.type":                   "process",
			"messaging.operation.name":                   "execute",
			"messaging.rabbitmq.destination.routing_key": "agent.thread.prompt",
		})
	})

	t.Run("without a message, a root span with the event id given", func(t *testing.T) {
		tr, rec := trSetup(t)
		if err := tr.Execute(context.Background(), middleware.ExecuteParams{Command: "llm.prompt", EventID: "e-1"},
			func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
		execute := trSpan(t, rec, "execute llm.prompt")
		if execute.Parent().IsValid() || execute.Status().Code == codes.Error {
			t.Errorf("parent %v, status %v; want a root span without error", execute.Parent(), execute.Status())
		}
		trWantAttrs(t, execute, map[attribute.Key]string{middleware.AttrEventID: "e-1", middleware.AttrEventType: "llm.prompt"})
	})
}

// Without a configured provider nothing is traced, but a trace that
// arrives is passed on, as a Python service copying its headers would.
func TestTracing_offByDefaultButPassesTheTraceThrough(t *testing.T) {
	tr := middleware.NewTracing(middleware.TracingConfig{}) // the global provider: a no-op in tests
	out := &trCapture{}
	pub := tr.DecoratePublisher(out)

	if err := pub.Publish("agent.thread.prompt", trEvent(t, "agent.thread.prompt", `{}`)); err != nil {
		t.Fatal(err)
	}
	if tp := out.last(t).Metadata.Get(middleware.HeaderTraceParent); tp != "" {
		t.Errorf("traceparent %q written with tracing off", tp)
	}

	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	delivered := trEvent(t, "agent.thread.prompt", `{}`)
	delivered.Metadata.Set(middleware.HeaderTraceParent, incoming)
	h := tr.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		resp := trEvent(t, "agent.thread.response", `{}`)
		resp.SetContext(msg.Context())
		return nil, pub.Publish("agent.thread.response", resp)
	})
	if _, err := h(delivered); err != nil {
		t.Fatal(err)
	}
	if got := out.last(t).Metadata.Get(middleware.HeaderTraceParent); got != incoming {
		t.Errorf("response traceparent = %q, want the incoming %q", got, incoming)
	}
}

// A message published again with no span in its context (a replay from
// the poison queue, by the CLI) continues the trace it carries; one
// published with a span in its context (a handler forwarding what it got)
// belongs to that span's trace, and the old tracestate does not linger.
func TestTracing_publishContinuesTheTraceAMessageCarries(t *testing.T) {
	tr, rec := trSetup(t)
	out := &trCapture{}
	const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	msg := trEvent(t, "agent.thread.prompt", `{}`)
	msg.Metadata.Set(middleware.HeaderTraceParent, "00-"+traceID+"-"+spanID+"-01")
	msg.Metadata.Set(middleware.HeaderTraceState, "vendor=stale")
	if err := tr.DecoratePublisher(out).Publish("agent.thread.prompt", msg); err != nil {
		t.Fatal(err)
	}
	s := trSpan(t, rec, "publish agent.thread.prompt")
	if s.SpanContext().TraceID().String() != traceID || s.Parent().SpanID().String() != spanID {
		t.Errorf("publish span in trace %s with parent %s, want %s and %s",
			s.SpanContext().TraceID(), s.Parent().SpanID(), traceID, spanID)
	}
	want := "00-" + traceID + "-" + s.SpanContext().SpanID().String() + "-01"
	if got := out.last(t).Metadata.Get(middleware.HeaderTraceParent); got != want {
		t.Errorf("traceparent = %q, want %q", got, want)
	}
	if got := out.last(t).Metadata.Get(middleware.HeaderTraceState); got != "vendor=stale" {
		t.Errorf("tracestate = %q, want the parent's %q", got, "vendor=stale")
	}

	rec.Reset()
	ctx, local := sdktrace.NewTracerProvider().Tracer("test").Start(context.Background(), "handler")
	defer local.End()
	msg.SetContext(ctx)
	if err := tr.DecoratePublisher(out).Publish("agent.thread.prompt", msg); err != nil {
		t.Fatal(err)
	}
	s = trSpan(t, rec, "publish agent.thread.prompt")
	if s.Parent().SpanID() != local.SpanContext().SpanID() {
		t.Errorf("forwarded message's span has parent %s, want the context's span %s", s.Parent().SpanID(), local.SpanContext().SpanID())
	}
	if got := out.last(t).Metadata.Get(middleware.HeaderTraceState); got != "" {
		t.Errorf("tracestate = %q after a publish in another trace, want none", got)
	}
}

func TestTracing_failedPublishEndsEverySpanWithTheError(t *testing.T) {
	tr, rec := trSetup(t)
	failing := &trCapture{err: fmt.Errorf("cannot publish: %w", transport.ErrUnroutable)}
	a, b := trEvent(t, "artifact.created", `{}`), trEvent(t, "artifact.created", `{}`)
	if err := tr.DecoratePublisher(failing).Publish("artifact.created", a, b); !errors.Is(err, transport.ErrUnroutable) {
		t.Fatalf("Publish returned %v, want the publisher's error", err)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want one per message", len(spans))
	}
	for i, s := range spans {
		if s.Status().Code != codes.Error || trAttr(s, "error.type") != "unroutable" {
			t.Errorf("span %d: status %v, error.type %q; want Error, unroutable", i, s.Status().Code, trAttr(s, "error.type"))
		}
	}
	if spans[0].SpanContext().TraceID() == spans[1].SpanContext().TraceID() {
		t.Error("two root publishes share a trace")
	}
}

func TestMetadataCarrier(t *testing.T) {
	md := message.Metadata{}
	c := middleware.MetadataCarrier(md)
	c.Set("traceparent", "x")
	if got := md.Get("traceparent"); got != "x" {
		t.Errorf("metadata traceparent = %q, want x", got)
	}
	if got := c.Get("tracestate"); got != "" {
		t.Errorf("Get of an absent key = %q", got)
	}
	if keys := c.Keys(); len(keys) != 1 || keys[0] != "traceparent" {
		t.Errorf("Keys = %q", keys)
	}
}

// A prompt published, handled, and answered: three spans of one trace. A
// service installs the same two pieces with b.DecoratePublisher and
// svc.Use; examples/tracing prints them with the stdout exporter.
func ExampleTracing() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tr := middleware.NewTracing(middleware.TracingConfig{TracerProvider: tp})

	logger := watermill.NopLogger{}
	pubsub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1}, logger)
	defer pubsub.Close()
	answers, _ := pubsub.Subscribe(context.Background(), "agent.thread.response")
	router, _ := message.NewRouter(message.RouterConfig{}, logger)
	router.AddPublisherDecorators(tr.PublisherDecorator())
	router.AddMiddleware(tr.Middleware)
	router.AddHandler("answer_prompts", "agent.thread.prompt", pubsub, "agent.thread.response", pubsub,
		func(msg *message.Message) ([]*message.Message, error) {
			env, err := envelope.New("agent.thread.response", map[string]any{"provider": "echo", "response": "hi"})
			if err != nil {
				return nil, err
			}
			answer, err := envelope.NewMessage(env)
			return []*message.Message{answer}, err
		})
	go func() { _ = router.Run(context.Background()) }()
	defer router.Close()
	<-router.Running()

	env, _ := envelope.New("agent.thread.prompt", map[string]any{"provider": "echo", "prompt": "hi"})
	prompt, _ := envelope.NewMessage(env)
	_ = tr.DecoratePublisher(pubsub).Publish("agent.thread.prompt", prompt)
	answer := <-answers
	answer.Ack()
	for len(rec.Ended()) < 3 { // the router's publish span ends just after the answer is out
		time.Sleep(time.Millisecond)
	}

	spans := rec.Ended()
	names := map[trace.SpanID]string{}
	for _, s := range spans {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	for _, name := range []string{"publish agent.thread.prompt", "handle agent.thread.prompt", "publish agent.thread.response"} {
		for _, s := range spans {
			if s.Name() == name {
				parent := names[s.Parent().SpanID()]
				if parent == "" {
					parent = "(root)"
				}
				fmt.Printf("%-30s %-9s parent: %-27s same trace: %v\n", s.Name(), s.SpanKind(), parent,
					s.SpanContext().TraceID() == spans[0].SpanContext().TraceID())
			}
		}
	}
	// Output:
	// publish agent.thread.prompt    producer  parent: (root)                      same trace: true
	// handle agent.thread.prompt     consumer  parent: publish agent.thread.prompt same trace: true
	// publish agent.thread.response  producer  parent: handle agent.thread.prompt  same trace: true
}
