package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/middleware"
)

const waitFor = 5 * time.Second

func testRegistry(t testing.TB) *domains.Registry {
	t.Helper()
	reg, err := catalog.New()
	if err != nil {
		t.Fatalf("catalog.New: %v", err)
	}
	return reg
}

// eventMessage builds the Watermill message of an envelope of eventType
// with the given payload JSON.
func eventMessage(t testing.TB, eventType, payload string, opts ...envelope.Option) *message.Message {
	t.Helper()
	env, err := envelope.New(eventType, json.RawMessage(payload), opts...)
	if err != nil {
		t.Fatalf("NewEnvelope(%s): %v", eventType, err)
	}
	msg, err := envelope.NewMessage(env)
	if err != nil {
		t.Fatalf("NewMessage(%s): %v", eventType, err)
	}
	return msg
}

const validPrompt = `{"provider":"anthropic","prompt":"Analyze this codebase","tags":["analysis"]}`

// outcome is what became of one message in a validationRouter.
type outcome struct {
	err     error // what the middleware chain returned
	reached bool  // whether the handler was called
}

// validationRouter runs a plain Watermill router on GoChannel whose one
// handler sits behind the validation middleware. The outermost middleware
// stands in for a poison queue: it reports the chain's error and acks, so
// that GoChannel does not redeliver a rejected message.
type validationRouter struct {
	pubSub   *gochannel.GoChannel
	outcomes chan outcomeOf
}

type outcomeOf struct {
	id string
	outcome
}

func newValidationRouter(t *testing.T, v *middleware.Validation) *validationRouter {
	t.Helper()
	logger := watermill.NopLogger{}
	pubSub := gochannel.NewGoChannel(gochannel.Config{}, logger)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: waitFor}, logger)
	if err != nil {
		t.Fatal(err)
	}
	vr := &validationRouter{pubSub: pubSub, outcomes: make(chan outcomeOf, 16)}
	var reached sync.Map
	router.AddMiddleware(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			_, called := reached.Load(msg.UUID)
			vr.outcomes <- outcomeOf{id: msg.UUID, outcome: outcome{err: err, reached: called}}
			return out, nil
		}
	}, v.Middleware)
	router.AddConsumerHandler("validated", "events", pubSub, func(msg *message.Message) error {
		reached.Store(msg.UUID, true)
		return nil
	})
	startRouter(t, router)
	t.Cleanup(func() { _ = pubSub.Close() })
	return vr
}

// startRouter runs router until the test ends and waits until it runs.
func startRouter(t *testing.T, router *message.Router) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- router.Run(context.Background()) }()
	select {
	case <-router.Running():
	case err := <-done:
		t.Fatalf("router stopped at start: %v", err)
	case <-time.After(waitFor):
		t.Fatal("router did not start")
	}
	t.Cleanup(func() {
		if err := router.Close(); err != nil {
			t.Errorf("router.Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("router.Run: %v", err)
		}
	})
}

// send publishes msg and returns what became of it.
func (vr *validationRouter) send(t *testing.T, msg *message.Message) outcome {
	t.Helper()
	if err := vr.pubSub.Publish("events", msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case o := <-vr.outcomes:
		if o.id != msg.UUID {
			t.Fatalf("got the outcome of %s, want %s", o.id, msg.UUID)
		}
		return o.outcome
	case <-time.After(waitFor):
		t.Fatalf("message %s was not handled", msg.UUID)
		return outcome{}
	}
}

func newValidation(t testing.TB, cfg middleware.ValidationConfig) *middleware.Validation {
	t.Helper()
	v, err := middleware.NewValidation(cfg)
	if err != nil {
		t.Fatalf("NewValidation: %v", err)
	}
	return v
}

// permanentOf returns err's PermanentError, failing the test if there is none
// or its kind is not kind.
func permanentOf(t *testing.T, err error, kind string) *envelope.PermanentError {
	t.Helper()
	var pe *envelope.PermanentError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *envelope.PermanentError", err, err)
	}
	if pe.Kind != kind {
		t.Errorf("PermanentError kind = %q, want %q (error: %v)", pe.Kind, kind, err)
	}
	return pe
}

func TestValidate_validPayloadReachesHandler(t *testing.T) {
	v := newValidation(t, middleware.ValidationConfig{Validator: testRegistry(t)})
	vr := newValidationRouter(t, v)

	o := vr.send(t, eventMessage(t, "agent.thread.prompt", validPrompt))
	if o.err != nil || !o.reached {
		t.Errorf("valid prompt: err = %v, reached = %v; want nil, true", o.err, o.reached)
	}
	if got, want := v.Stats(), (middleware.ValidationStats{Valid: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestValidate_invalidPayloadNeverReachesHandler(t *testing.T) {
	v := newValidation(t, middleware.ValidationConfig{Validator: testRegistry(t)})
	vr := newValidationRouter(t, v)

	o := vr.send(t, eventMessage(t, "agent.thread.prompt", `{"provider":"anthropic","prompt":"hi","tags":"analysis"}`))
	if o.reached {
		t.Error("the handler got an invalid payload")
	}
	permanentOf(t, o.err, envelope.KindInvalid)
	if !envelope.IsPermanent(o.err) {
		t.Error("envelope.IsPermanent = false")
	}
	var ve *domains.ValidationError
	if !errors.As(o.err, &ve) {
		t.Fatalf("errors.As(*domains.ValidationError) failed on %v", o.err)
	}
	if len(ve.Problems) != 1 || ve.Problems[0].Path != "payload.tags" {
		t.Errorf("problems = %v, want one at payload.tags", ve.Problems)
	}
	if !strings.Contains(o.err.Error(), "payload.tags") {
		t.Errorf("error %q does not name the path payload.tags", o.err)
	}
	if !errors.Is(o.err, domains.ErrInvalidPayload) {
		t.Error("errors.Is(err, domains.ErrInvalidPayload) = false")
	}
	if got, want := v.Stats(), (middleware.ValidationStats{Invalid: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestValidate_malformedNeverReachesHandler(t *testing.T) {
	v := newValidation(t, middleware.ValidationConfig{Validator: testRegistry(t)})
	vr := newValidationRouter(t, v)

	// What the codec makes of a body that is not an envelope.
	msg := message.NewMessage(uuid.NewString(), []byte(`{"event_type": 42}`))
	msg.Metadata.Set(envelope.MetaMalformed, "event_type: expected a string")
	o := vr.send(t, msg)
	if o.reached {
		t.Error("the handler got a malformed message")
	}
	pe := permanentOf(t, o.err, envelope.KindMalformed)
	var me *envelope.MalformedError
	if !errors.As(pe, &me) || me.Reason != "event_type: expected a string" {
		t.Errorf("malformed error %v does not carry the codec's reason", pe)
	}
	if got, want := v.Stats(), (middleware.ValidationStats{Malformed: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestValidate_unknownTypePolicies(t *testing.T) {
	tests := []struct {
		name        string
		policy      middleware.UnknownTypePolicy
		wantReached bool
	}{
		{"default passes through", middleware.UnknownPassThrough, true},
		{"reject", middleware.UnknownReject, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newValidation(t, middleware.ValidationConfig{Validator: testRegistry(t), UnknownTypes: tt.policy})
			vr := newValidationRouter(t, v)

			o := vr.send(t, eventMessage(t, "billing.invoice.paid", `{"invoice_id":"x"}`))
			if o.reached != tt.wantReached {
				t.Errorf("reached = %v, want %v", o.reached, tt.wantReached)
			}
			if tt.wantReached {
				if o.err != nil {
					t.Errorf("err = %v, want nil", o.err)
				}
			} else {
				permanentOf(t, o.err, envelope.KindUnknownType)
				if !errors.Is(o.err, domains.ErrUnknownEventType) {
					t.Errorf("errors.Is(err, ErrUnknownEventType) = false for %v", o.err)
				}
			}
			if got, want := v.Stats(), (middleware.ValidationStats{Unknown: 1}); got != want {
				t.Errorf("Stats = %+v, want %+v", got, want)
			}
			// A known type is still validated under either policy.
			o = vr.send(t, eventMessage(t, "agent.thread.prompt", `{"provider":"anthropic"}`))
			if o.reached {
				t.Error("an invalid known event reached the handler")
			}
			permanentOf(t, o.err, envelope.KindInvalid)
		})
	}
}

func TestValidateConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     middleware.ValidationConfig
		wantErr []string
	}{
		{"defaults", middleware.ValidationConfig{Validator: testRegistry(t)}, nil},
		{"reject", middleware.ValidationConfig{Validator: testRegistry(t), UnknownTypes: middleware.UnknownReject}, nil},
		{"nothing", middleware.ValidationConfig{UnknownTypes: 7}, []string{"Validator is required", "UnknownTypePolicy(7)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := middleware.NewValidation(tt.cfg)
			if (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("NewValidation error = %v, want error: %v", err, tt.wantErr != nil)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestUnknownTypePolicy_String(t *testing.T) {
	for p, want := range map[middleware.UnknownTypePolicy]string{
		middleware.UnknownPassThrough: "pass_through",
		middleware.UnknownReject:      "reject",
	} {
		if got := p.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(p), got, want)
		}
	}
}

// On a bus.Service the permanent error of an invalid or malformed message is
// logged and acked by the service (no poison queue yet): the handler never
// sees the message, and it is not redelivered.
func TestValidate_serviceNeverRedeliversInvalid(t *testing.T) {
	broker := embedded.New(nil)
	t.Cleanup(func() { _ = broker.Close() })
	cfg, err := bus.LoadConfig([]string{"SERVICE_NAME=validate_" + strings.ReplaceAll(t.Name(), "/", "_"),
		"BB_CONSUMERS=1", "BB_DRAIN_TIMEOUT=5s"}, "")
	if err != nil {
		t.Fatal(err)
	}
	b := bus.NewEmbeddedBus(cfg, broker, nil)
	t.Cleanup(func() { _ = b.Close() })
	svc, err := b.NewService("")
	if err != nil {
		t.Fatal(err)
	}
	v := newValidation(t, middleware.ValidationConfig{Validator: testRegistry(t)})
	svc.Use(v.Middleware)
	var calls atomic.Int64
	handled := make(chan string, 10)
	if err := svc.HandleMessage("prompts", "agent.thread.#", func(msg *message.Message) error {
		calls.Add(1)
		handled <- msg.UUID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-svc.Running():
	case err := <-done:
		t.Fatalf("service stopped at start: %v", err)
	case <-time.After(waitFor):
		t.Fatal("service did not start")
	}

	invalid, err := envelope.New("agent.thread.prompt", json.RawMessage(`{"provider":"anthropic","prompt":"hi","tags":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), invalid); err != nil {
		t.Fatal(err)
	}
	// A body that is not an envelope: the codec marks it malformed on the
	// way in, as it would coming from RabbitMQ.
	garbage := message.NewMessage(uuid.NewString(), []byte(`not an envelope`))
	garbage.Metadata.Set(envelope.MetaMalformed, "not JSON")
	if err := b.Publisher().Publish("agent.thread.prompt", garbage); err != nil {
		t.Fatal(err)
	}
	// With one consumer the queue is worked in order: once two valid events
	// published after them were handled, the rejected ones were settled,
	// and a redelivery would have been counted before the second one.
	for i := range 2 {
		valid, err := envelope.New("agent.thread.prompt", json.RawMessage(validPrompt))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(context.Background(), valid); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-handled:
			if id != valid.EventID.String() {
				t.Fatalf("handler %d got %s, want the valid event %s", i, id, valid.EventID)
			}
		case <-time.After(waitFor):
			t.Fatalf("valid event %d was not handled", i)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("handler called %d times, want 2 (the valid events only)", n)
	}
	if got, want := v.Stats(), (middleware.ValidationStats{Valid: 2, Invalid: 1, Malformed: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v (a count above 1 is a redelivery)", got, want)
	}
	if n := broker.QueueLength(svc.QueueName()); n != 0 {
		t.Errorf("%d messages left in %s, want 0", n, svc.QueueName())
	}
}

func BenchmarkValidate_middleware(b *testing.B) {
	reg := testRegistry(b)
	et, err := reg.LookupKey("fireflies.transcript.ready")
	if err != nil {
		b.Fatal(err)
	}
	msg := eventMessage(b, "fireflies.transcript.ready", string(et.Example()))
	v := newValidation(b, middleware.ValidationConfig{Validator: reg})
	h := v.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	b.ReportAllocs()
	b.SetBytes(int64(len(msg.Payload)))
	for b.Loop() {
		if _, err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// A payload that Python's lax mode accepts reaches the handler converted,
// unless StrictTypes asks for today's strict behaviour.
func TestValidate_laxTypesAsPythonUnlessStrict(t *testing.T) {
	lax := `{"media_file":"/m.mp4","media_duration_seconds":"90","media_type":"video"}`
	for _, strict := range []bool{false, true} {
		v := newValidation(t, middleware.ValidationConfig{Validator: testRegistry(t), StrictTypes: strict})
		var got []byte
		_, err := v.Middleware(func(msg *message.Message) ([]*message.Message, error) {
			got = msg.Payload
			return nil, nil
		})(eventMessage(t, "fireflies.transcript.upload", lax))
		if strict {
			if got != nil || !errors.Is(err, domains.ErrInvalidPayload) {
				t.Errorf("strict: handler got %s, err %v; want it refused as invalid", got, err)
			}
			continue
		}
		if err != nil || string(got) != strings.Replace(lax, `"90"`, `90`, 1) {
			t.Errorf("lax: handler got %s, err %v; want the integer 90", got, err)
		}
		if s := v.Stats(); s.Valid != 1 {
			t.Errorf("lax: Stats = %+v, want it counted valid", s)
		}
	}
}
