package cqrs_test

import (
	"context"
	"encoding/json"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/cqrs/commands"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
)

// pythonPrompt is an agent.thread.prompt body as the Python publisher writes
// it: compact JSON, "+00:00" offset, explicit nulls.
func pythonPrompt(id uuid.UUID, prompt string) []byte {
	return []byte(`{"event_id":"` + id.String() + `","event_type":"agent.thread.prompt","timestamp":"2026-01-29T10:00:00.123456+00:00","version":"1.0.0","source":{"host":"127.0.0.1","type":"manual","app":"http-client","meta":null},"correlation_ids":[],"agent_context":{"type":"claude-code","name":"Code Analyzer","system_prompt":null,"instance_id":"i-42","mcp_servers":null,"file_references":null,"url_references":null,"code_state":null,"checkpoint_id":null,"meta":null},"payload":{"provider":"anthropic","model":"claude-sonnet-4","prompt":"` + prompt + `","project":"bloodbank","working_dir":null,"domain":null,"tags":["analysis"]}}`)
}

// rabbitEnv is a test's own exchange on the real RabbitMQ and the real
// Redis; everything it declares or writes is removed when the test ends.
type rabbitEnv struct {
	t        *testing.T
	url      string
	exchange string
	raw      *amqp091.Connection
	ch       *amqp091.Channel
	redis    redis.UniversalClient
	queues   []string
	keys     []string
}

func newRabbitEnv(t *testing.T) *rabbitEnv {
	t.Helper()
	url := testenv.RabbitURL(t)
	addr := testenv.Redis(t)
	raw, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	client, err := correlation.NewUniversalClient(correlation.Settings{Host: host, Port: p})
	if err != nil {
		t.Fatal(err)
	}
	e := &rabbitEnv{t: t, url: url, exchange: "bbtest." + uuid.NewString()[:8], raw: raw, ch: ch, redis: client}
	// The exchange as the bus declares it, so that the test can bind its
	// observer before the service starts.
	if err := ch.ExchangeDeclare(e.exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cch, err := raw.Channel()
		if err == nil {
			for _, q := range e.queues {
				_, _ = cch.QueueDelete(q, false, false, false)
			}
			_ = cch.ExchangeDelete(e.exchange, false, false)
			_ = cch.Close()
		}
		_ = raw.Close()
		if len(e.keys) > 0 {
			_ = client.Del(context.Background(), e.keys...).Err()
		}
		_ = client.Close()
	})
	return e
}

func (e *rabbitEnv) queue(name string) string {
	q := e.exchange + "." + name
	e.queues = append(e.queues, q)
	return q
}

// forget deletes the correlation keys of these events when the test ends.
func (e *rabbitEnv) forget(ids ...uuid.UUID) {
	for _, id := range ids {
		e.keys = append(e.keys, correlation.DefaultKeyPrefix+"forward:"+id.String(), correlation.DefaultKeyPrefix+"reverse:"+id.String())
	}
}

// observe binds a queue of the test's own to pattern and returns its
// deliveries, auto-acked.
func (e *rabbitEnv) observe(pattern string) <-chan amqp091.Delivery {
	e.t.Helper()
	q := e.queue("observer." + uuid.NewString()[:8])
	if _, err := e.ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		e.t.Fatal(err)
	}
	if err := e.ch.QueueBind(q, pattern, e.exchange, false, nil); err != nil {
		e.t.Fatal(err)
	}
	ch, err := e.raw.Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// publishRaw publishes body as the Python publisher does, with confirms.
func (e *rabbitEnv) publishRaw(ch *amqp091.Channel, routingKey string, id uuid.UUID, body []byte) {
	e.t.Helper()
	conf, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), e.exchange, routingKey, false, false, amqp091.Publishing{
		ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp091.Persistent, MessageId: id.String(), Body: body,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ok, err := conf.WaitContext(ctx); !ok || err != nil {
		e.t.Fatalf("publish not confirmed: %v", err)
	}
}

func (e *rabbitEnv) confirmChannel() *amqp091.Channel {
	e.t.Helper()
	ch, err := e.raw.Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		e.t.Fatal(err)
	}
	return ch
}

func receive(t *testing.T, d <-chan amqp091.Delivery) (amqp091.Delivery, map[string]any) {
	t.Helper()
	select {
	case m := <-d:
		var body map[string]any
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatalf("response body is not JSON: %v: %s", err, m.Body)
		}
		return m, body
	case <-time.After(15 * time.Second):
		t.Fatal("no response within 15s")
	}
	return amqp091.Delivery{}, nil
}

func TestRabbit_pythonPromptIsAnsweredWithLinksInRedis(t *testing.T) {
	e := newRabbitEnv(t)
	cfg, err := bus.LoadConfig([]string{"RABBIT_URL=" + e.url, "EXCHANGE_NAME=" + e.exchange, "SERVICE_NAME=command_processor", "BB_DRAIN_TIMEOUT=5s"}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	store, err := correlation.NewRedisStore(e.redis, correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{Batching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rec.Close(context.Background()) }()
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	b.DecoratePublisher(func(p message.Publisher) message.Publisher { return middleware.NewRecordingPublisher(p, rec) })
	proc, err := cqrs.NewProcessor(b.Publisher(), cqrs.ProcessorConfig{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := commands.Register(proc, nil); err != nil {
		t.Fatal(err)
	}
	svc, err := b.NewService("")
	if err != nil {
		t.Fatal(err)
	}
	e.queue("command_processor")
	if err := proc.AddHandlersToService(svc); err != nil {
		t.Fatal(err)
	}
	responses := e.observe(thread.RoutingKeyResponse)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	select {
	case <-svc.Running():
	case err := <-done:
		t.Fatalf("service stopped: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("service did not start")
	}

	pub := e.confirmChannel()
	promptID := uuid.New()
	wantResponseID := cqrs.SideEffectID(thread.RoutingKeyResponse, promptID, 0)
	e.forget(promptID, wantResponseID)
	body := pythonPrompt(promptID, "Analyze this codebase")
	e.publishRaw(pub, thread.RoutingKeyPrompt, promptID, body)

	m, resp := receive(t, responses)
	if resp["event_id"] != wantResponseID.String() || m.MessageId != wantResponseID.String() {
		t.Errorf("response id = %v (message_id %s), want %s", resp["event_id"], m.MessageId, wantResponseID)
	}
	if m.DeliveryMode != amqp091.Persistent || m.ContentType != "application/json" || m.RoutingKey != thread.RoutingKeyResponse {
		t.Errorf("properties: delivery_mode %d, content_type %q, routing key %q", m.DeliveryMode, m.ContentType, m.RoutingKey)
	}
	if !reflect.DeepEqual(resp["correlation_ids"], []any{promptID.String()}) {
		t.Errorf("correlation_ids = %v, want [%s]", resp["correlation_ids"], promptID)
	}
	if ac, _ := resp["agent_context"].(map[string]any); ac["name"] != "Code Analyzer" || ac["instance_id"] != "i-42" {
		t.Errorf("agent_context = %v, want the prompt's", resp["agent_context"])
	}
	payload, _ := resp["payload"].(map[string]any)
	if text, _ := payload["response"].(string); !strings.Contains(text, "Analyze this codebase") || payload["tokens_used"] == nil || payload["duration_ms"] == nil {
		t.Errorf("payload = %v", payload)
	}

	// The links of wire-contract section 4, as the Python tracker reads them.
	ctx := context.Background()
	forward := correlation.DefaultKeyPrefix + "forward:" + wantResponseID.String()
	reverse := correlation.DefaultKeyPrefix + "reverse:" + promptID.String()
	var raw string
	eventually(t, "the forward key is written", func() bool {
		raw, err = e.redis.Get(ctx, forward).Result()
		return err == nil
	})
	var link struct {
		Parents   []string       `json:"parent_event_ids"`
		CreatedAt string         `json:"created_at"`
		Metadata  map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(raw), &link); err != nil {
		t.Fatalf("%s = %s: %v", forward, raw, err)
	}
	if !reflect.DeepEqual(link.Parents, []string{promptID.String()}) || link.CreatedAt == "" || link.Metadata == nil {
		t.Errorf("%s = %s, want parent_event_ids [%s]", forward, raw, promptID)
	}
	if ok, err := e.redis.SIsMember(ctx, reverse, wantResponseID.String()).Result(); err != nil || !ok {
		t.Errorf("%s does not contain %s (%v)", reverse, wantResponseID, err)
	}
	if ttl, err := e.redis.TTL(ctx, forward).Result(); err != nil || ttl <= 0 {
		t.Errorf("TTL of %s = %v (%v), want the 30-day TTL", forward, ttl, err)
	}

	// The same envelope again, as a redelivery: the same response id.
	e.publishRaw(pub, thread.RoutingKeyPrompt, promptID, body)
	if _, again := receive(t, responses); again["event_id"] != wantResponseID.String() {
		t.Errorf("redelivered prompt answered with %v, want %s again", again["event_id"], wantResponseID)
	}
	if n, err := e.redis.SCard(ctx, reverse).Result(); err != nil || n != 1 {
		t.Errorf("the prompt has %d children (%v), want 1", n, err)
	}

	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	q, err := pub.QueueDeclarePassive(svc.QueueName(), true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 0 {
		t.Errorf("%d messages left in %s", q.Messages, svc.QueueName())
	}
	if got := proc.Stats(); got.Executed != 2 || got.Failed != 0 {
		t.Errorf("stats = %+v", got)
	}
}
