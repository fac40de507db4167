// Command watermill-amqp is a plain Watermill service on RabbitMQ that joins
// a Bloodbank bus: a message.Router on watermill-amqp's own Subscriber and
// Publisher, with no bus.Bus and no bus.Service. It answers every
// agent.thread.prompt on the exchange with an agent.thread.response, as the
// Python services would see it, and runs until SIGINT or SIGTERM.
//
// Three Bloodbank pieces make watermill-amqp speak the Bloodbank wire:
//
//   - envelope.Codec{} as the Marshaler: the whole v1 envelope in the body,
//     the properties the Python services set (wire-contract section 2), and
//     an Unmarshal that never fails (see subscriberConfig);
//   - amqp.TopologyBuilder{Patterns: ...} as the TopologyBuilder: the durable
//     topic exchange with the Python flags, and the service queue bound to
//     the routing keys the service handles (see subscriberConfig for why
//     watermill-amqp's own topology cannot do this);
//   - the names: the service queue is "{exchange}.{service}" and its poison
//     queue "{exchange}.{service}.poison", so `bb dlq --service prompt_echo`
//     lists, replays and purges what this service parked.
//
// And the middleware of package middleware, as in any Watermill router:
// Poison parks what cannot be handled in the poison queue, Retry retries
// transient errors, Validate rejects a payload that is invalid for its
// event type, and Causation with a RecordingPublisher stamps
// correlation_ids = [prompt id] on the response and records the link in the
// correlation graph that Go and Python share.
//
// Settings, from the environment: RABBIT_URL (required), EXCHANGE_NAME
// (default bloodbank.events.v1), BB_PREFETCH (default 10), and the
// correlation store: REDIS_URL, or REDIS_HOST, REDIS_PORT, REDIS_DB and
// REDIS_PASSWORD, and CORRELATION_TTL_DAYS. Without REDIS_URL and
// REDIS_HOST the links go to an in-process store, which no other service
// sees.
//
//	RABBIT_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/watermill-amqp
//	go run ./cmd/bb publish agent.thread.prompt --mock
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/caarlos0/env/v10"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/middleware"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// serviceName names the service queue ("{exchange}.prompt_echo") and its
// poison queue. It is part of the contract: renaming it moves the service to
// a new, empty queue and leaves what was queued or parked behind. It is not
// read from SERVICE_NAME, which a .env shared with a Python service sets to
// that service's name: two services on one queue take turns at its messages.
const serviceName = "prompt_echo"

// handlerName appears in logs and in the HeaderPoisonHandler header of
// parked messages.
const handlerName = "answer_prompt"

// config is what the service reads from the environment.
type config struct {
	RabbitURL string `env:"RABBIT_URL,required"`
	Exchange  string `env:"EXCHANGE_NAME" envDefault:"bloodbank.events.v1"`
	// Prefetch is the QoS prefetch count of the service queue's consumer.
	// watermill-amqp hands the router one delivery at a time, so it only
	// sets how many wait in the client.
	Prefetch int `env:"BB_PREFETCH" envDefault:"10"`

	RedisURL           string `env:"REDIS_URL"`
	RedisHost          string `env:"REDIS_HOST"`
	RedisPort          int    `env:"REDIS_PORT" envDefault:"6379"`
	RedisDB            int    `env:"REDIS_DB" envDefault:"0"`
	RedisPassword      string `env:"REDIS_PASSWORD"`
	CorrelationTTLDays int    `env:"CORRELATION_TTL_DAYS" envDefault:"30"`
}

// serviceQueue is the durable queue of the service, named as every
// Bloodbank service queue is.
func (c config) serviceQueue() string { return bus.ServiceQueueName(c.Exchange, serviceName) }

// poisonQueue is where Poison parks messages, under the name `bb dlq` reads.
func (c config) poisonQueue() string { return reliability.PoisonQueueName(c.serviceQueue()) }

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := mainErr(logger); err != nil {
		fmt.Fprintln(os.Stderr, "watermill-amqp:", err)
		os.Exit(1)
	}
}

func mainErr(logger *slog.Logger) error {
	var cfg config
	if err := env.Parse(&cfg); err != nil {
		return fmt.Errorf("cannot read settings: %w (for a local RabbitMQ: RABBIT_URL=amqp://guest:guest@127.0.0.1:5672/)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	store, closeStore, err := openStore(cfg, logger)
	if err != nil {
		return err
	}
	defer closeStore()
	// The recorder writes links beside the bus and never fails a publish:
	// correlation must never hold up the service.
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{Logger: logger})
	if err != nil {
		return err
	}
	defer rec.Close(context.Background()) // after the router: writes what is left

	a, err := newApp(cfg, rec, echo, logger)
	if err != nil {
		return err
	}
	logger.Info("answering prompts; stop with Ctrl-C",
		slog.String("queue", cfg.serviceQueue()), slog.String("poison_queue", cfg.poisonQueue()))
	return a.run(ctx)
}

// openStore opens the correlation graph: the Redis the Python services
// share when REDIS_URL or REDIS_HOST is set, else an in-process one.
func openStore(cfg config, logger *slog.Logger) (correlation.Writer, func(), error) {
	storeCfg := correlation.RedisConfig{TTL: correlation.TTLFromDays(cfg.CorrelationTTLDays)}
	if cfg.RedisURL == "" && cfg.RedisHost == "" {
		logger.Warn("no REDIS_URL or REDIS_HOST: correlation links go to an in-process store that no other service sees")
		store, err := correlation.NewEmbeddedStore(storeCfg)
		if err != nil {
			return nil, nil, err
		}
		return store, func() { _ = store.Close() }, nil
	}
	client, err := correlation.NewUniversalClient(correlation.Settings{
		URL: cfg.RedisURL, Host: cfg.RedisHost, Port: cfg.RedisPort, DB: cfg.RedisDB, Password: cfg.RedisPassword,
	})
	if err != nil {
		return nil, nil, err
	}
	store, err := correlation.NewRedisStore(client, storeCfg)
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	return store, func() { _ = client.Close() }, nil
}

// subscriberConfig is the watermill-amqp configuration of the service
// queue's consumer, with marshaler as its Marshaler. The topic given to
// Subscribe (the router's subscribe topic) is the service queue's name.
func subscriberConfig(cfg config, marshaler wamqp.Marshaler) wamqp.Config {
	return wamqp.Config{
		Connection: wamqp.ConnectionConfig{AmqpURI: cfg.RabbitURL},
		// Unmarshal never returns an error. watermill-amqp nacks and
		// requeues a delivery whose Unmarshal fails, before any middleware
		// sees it: one body that is not an envelope would come back
		// forever and hold up the queue. The codec turns such a body into
		// a message marked malformed (envelope.MetaMalformed) whose payload
		// is the body, byte for byte; Validate fails it permanently and
		// Poison parks it.
		Marshaler: marshaler,
		Exchange: wamqp.ExchangeConfig{
			GenerateName: func(string) string { return cfg.Exchange },
			Type:         "topic",
			Durable:      true,
		},
		Queue: wamqp.QueueConfig{
			GenerateName: wamqp.GenerateQueueNameTopicName,
			Durable:      true,
		},
		Consume: wamqp.ConsumeConfig{Qos: wamqp.QosConfig{PrefetchCount: cfg.Prefetch}},
		// watermill-amqp's DefaultTopologyBuilder binds the queue with
		// QueueBind.GenerateRoutingKey(queue name): to its own name, or to
		// whatever one key is derived from it, never to the routing keys
		// the service handles, and never to more than one. A prompt
		// published under agent.thread.prompt would reach no queue. The
		// Bloodbank TopologyBuilder declares the exchange with the Python
		// services' flags (RabbitMQ refuses a redeclaration with other
		// flags) and binds the queue once per pattern. Its Exchange must be
		// the one Exchange.GenerateName returns.
		TopologyBuilder: amqp.TopologyBuilder{
			Topology: amqp.Topology{Exchange: cfg.Exchange},
			Patterns: []string{thread.RoutingKeyPrompt},
		},
	}
}

// bodyKeeper is envelope.Codec plus what watermill-amqp's subscriber loses:
// the body each delivery arrived with. Poison parks that body byte for byte
// (envelope.OriginalBody); without it, Poison parks an event as the codec
// writes it, the same event in other bytes (a Python timestamp's "+00:00"
// becomes "Z"). Bloodbank's own subscriber puts the body in the message's
// context, but watermill-amqp replaces the context of every message after
// Unmarshal: so the body waits here, keyed by message, until Middleware,
// installed outermost, moves it into the context.
type bodyKeeper struct {
	envelope.Codec
	bodies sync.Map // *message.Message → []byte
}

// Unmarshal decodes d with the codec and keeps its body for Middleware.
func (k *bodyKeeper) Unmarshal(d amqp091.Delivery) (*message.Message, error) {
	msg, err := k.Codec.Unmarshal(d)
	if err == nil {
		k.bodies.Store(msg, d.Body)
	}
	return msg, err
}

// Middleware gives each message the body it arrived with. A message that
// watermill-amqp nacks before the router gets it (its subscriber closing)
// leaves its body behind: one per subscription, at shutdown.
func (k *bodyKeeper) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if body, ok := k.bodies.LoadAndDelete(msg); ok {
			msg.SetContext(envelope.WithOriginalBody(msg.Context(), body.([]byte)))
		}
		return h(msg)
	}
}

// publisherConfig is the watermill-amqp configuration of the publisher of
// the responses: the Watermill topic is the routing key.
func publisherConfig(cfg config) wamqp.Config {
	return wamqp.Config{
		Connection: wamqp.ConnectionConfig{AmqpURI: cfg.RabbitURL},
		Marshaler:  envelope.Codec{},
		Exchange: wamqp.ExchangeConfig{
			GenerateName: func(string) string { return cfg.Exchange },
			Type:         "topic",
			Durable:      true,
		},
		Publish: wamqp.PublishConfig{
			GenerateRoutingKey: func(topic string) string { return topic },
			// The wire contract publishes with confirms: Publish returns
			// once the broker has the message, and the prompt is acked
			// only then.
			ConfirmDelivery: true,
			// Without a pool, every Publish opens and closes a channel. The
			// one handler publishes one response at a time.
			ChannelPoolSize: 1,
		},
		// The publisher declares the exchange before its first publish:
		// with the Python flags, through the same builder.
		TopologyBuilder: amqp.TopologyBuilder{Topology: amqp.Topology{Exchange: cfg.Exchange}},
	}
}

// poisonPublisherConfig publishes to the poison queue through the default
// exchange, whose routing key is a queue's name.
//
// Poison acks a failed delivery as soon as its Publish returns, so that
// Publish must mean the broker has the message: ConfirmDelivery. Without
// it, watermill-amqp returns once the frame is written, and a broker that
// goes down then loses a message that was already acked.
//
// A confirm is not a proof that a queue took the message: the broker
// confirms an unroutable message too, and watermill-amqp does not listen
// for returns, so Mandatory would change nothing. The poison queue is
// therefore declared before the router consumes anything (newApp).
func poisonPublisherConfig(cfg config) wamqp.Config {
	return wamqp.Config{
		Connection: wamqp.ConnectionConfig{AmqpURI: cfg.RabbitURL},
		// Poison marks a parked message so that the codec writes its body
		// unchanged: the body it arrived with (bodyKeeper).
		Marshaler: envelope.Codec{},
		Exchange:  wamqp.ExchangeConfig{GenerateName: func(string) string { return "" }},
		Publish: wamqp.PublishConfig{
			GenerateRoutingKey: func(topic string) string { return topic },
			ConfirmDelivery:    true,
			ChannelPoolSize:    1,
		},
		// Never called: the default exchange is not declared.
		TopologyBuilder: &wamqp.DefaultTopologyBuilder{},
	}
}

// app is the service: its router, the middleware it reports on, and what it
// closes when the router stops.
type app struct {
	router     *message.Router
	validation *middleware.Validation
	retry      *middleware.Retry
	poison     *middleware.Poison
	closers    []func() error
}

// newApp connects to RabbitMQ, declares the poison queue and builds the
// router. ask answers each prompt; rec records the correlation links.
func newApp(cfg config, rec middleware.LinkRecorder, ask agent, logger *slog.Logger) (a *app, err error) {
	a = &app{}
	defer func() {
		if err != nil {
			_ = a.close()
		}
	}()
	wlogger := watermill.NewSlogLogger(logger)

	// One connection consumes, another publishes: RabbitMQ throttles a
	// connection that publishes faster than the broker writes, and a
	// consumer on it would then stop acking too.
	bodies := &bodyKeeper{}
	sub, err := wamqp.NewSubscriber(subscriberConfig(cfg, bodies), wlogger)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to RabbitMQ: %w", err)
	}
	a.closers = append(a.closers, sub.Close)
	pubConn, err := wamqp.NewConnection(publisherConfig(cfg).Connection, wlogger)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to RabbitMQ: %w", err)
	}
	a.closers = append(a.closers, pubConn.Close)
	pub, err := wamqp.NewPublisherWithConnection(publisherConfig(cfg), wlogger, pubConn)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, pub.Close)
	poisonPub, err := wamqp.NewPublisherWithConnection(poisonPublisherConfig(cfg), wlogger, pubConn)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, poisonPub.Close)
	if err := declarePoisonQueue(pubConn, cfg); err != nil {
		return nil, err
	}

	reg, err := catalog.New()
	if err != nil {
		return nil, err
	}
	if a.validation, err = middleware.NewValidation(middleware.ValidationConfig{Validator: reg, Logger: logger}); err != nil {
		return nil, err
	}
	// Three attempts, 100 ms then 200 ms apart (with jitter), in process:
	// watermill-amqp would requeue a nacked delivery at once, so a retry
	// that waits must happen here.
	if a.retry, err = middleware.NewRetry(middleware.RetryConfig{Logger: logger}); err != nil {
		return nil, err
	}
	if a.poison, err = middleware.NewPoison(middleware.PoisonConfig{
		Publisher: poisonPub, Queue: cfg.poisonQueue(), Service: serviceName, Logger: logger,
	}); err != nil {
		return nil, err
	}

	if a.router, err = message.NewRouter(message.RouterConfig{}, wlogger); err != nil {
		return nil, err
	}
	// The response a handler returns is published through this decorator:
	// once the broker confirmed it, its link to the prompt is recorded.
	a.router.AddPublisherDecorators(middleware.RecordingPublisherDecorator(rec))
	// Outermost first. bodyKeeper comes first, so that the others see
	// the body a message arrived with. A plain router nacks every error,
	// and watermill-amqp requeues a nacked delivery at once: Poison, next,
	// is what keeps a message that cannot succeed from coming back
	// forever. It parks what Retry gave up on, and Validate's permanent
	// errors, which Retry does not retry. Causation, innermost, links
	// what the handler returns to the prompt: correlation_ids and the
	// prompt's agent_context.
	a.router.AddMiddleware(bodies.Middleware, a.poison.Middleware, a.retry.Middleware, a.validation.Middleware, middleware.Causation)
	// One handler on the queue. Every Subscribe of watermill-amqp is a
	// consumer of its own, so two handlers subscribed to one queue would
	// take turns at its messages, whatever their routing keys: a service
	// that handles several event types dispatches on envelope.EventType in
	// one handler, or gives each handler its own queue. A subscription
	// handles one delivery at a time. The router publishes what the
	// handler returns under the publish topic, which the publisher uses as
	// the routing key: a handler that answers with several event types
	// publishes them itself, each under envelope.EventType(msg), with
	// msg.Context() so that Causation's link is kept.
	a.router.AddHandler(handlerName, cfg.serviceQueue(), sub, thread.RoutingKeyResponse, pub, prompts{ask: ask, logger: logger}.answer)
	return a, nil
}

// declarePoisonQueue declares the poison queue as a Bloodbank service
// declares it (durable, no bindings), with the exchange.
func declarePoisonQueue(conn *wamqp.ConnectionWrapper, cfg config) error {
	ch, err := conn.Connection().Channel()
	if err != nil {
		return fmt.Errorf("cannot open a channel: %w", err)
	}
	defer ch.Close()
	return amqp.Topology{Exchange: cfg.Exchange}.DeclareQueue(ch, cfg.poisonQueue())
}

// run runs the router until ctx ends, then closes the publishers and the
// publishing connection (the router closes the subscriber).
//
// On shutdown the router closes the subscriber at once, and watermill-amqp
// then nacks (requeues) a delivery whose handler is still running: that
// prompt is delivered again, and answered again, after a restart. Its
// response has an id derived from the prompt's, so that a consumer can
// tell the second answer for a duplicate.
func (a *app) run(ctx context.Context) error {
	err := a.router.Run(ctx)
	return errors.Join(err, a.close())
}

func (a *app) close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// agent answers a prompt; it stands in for a model client. Its error is
// transient (Retry tries again) unless it is envelope.Permanent.
type agent func(ctx context.Context, p thread.Prompt) (string, error)

// echo is the agent of this example: it answers with the prompt.
func echo(_ context.Context, p thread.Prompt) (string, error) { return "echo: " + p.Prompt, nil }

// prompts is the handler of agent.thread.prompt.
type prompts struct {
	ask    agent
	logger *slog.Logger
}

// answer asks the agent and returns one agent.thread.response. Validate has
// already checked the payload against the catalogue, and Causation stamps
// the response's correlation_ids and agent_context.
func (h prompts) answer(msg *message.Message) ([]*message.Message, error) {
	var p thread.Prompt
	if err := json.Unmarshal(msg.Payload, &p); err != nil {
		return nil, envelope.Permanent(fmt.Errorf("cannot decode prompt: %w", err))
	}
	text, err := h.ask(msg.Context(), p)
	if err != nil {
		return nil, fmt.Errorf("agent %s cannot answer: %w", p.Provider, err)
	}
	promptID := msg.UUID
	resp, err := envelope.New(thread.RoutingKeyResponse,
		// No prompt_id: it is deprecated, correlation_ids names the prompt.
		thread.Response{Provider: p.Provider, Model: p.Model, Response: text},
		// The same prompt, delivered again, gets the same response id.
		envelope.WithEventID(envelope.DeterministicIDOf(thread.RoutingKeyResponse, envelope.StrField("prompt_id", promptID))),
		envelope.WithSource(envelope.Source{Host: envelope.Hostname(), Type: envelope.TriggerAgent, App: serviceName}),
	)
	if err != nil {
		return nil, envelope.Permanent(err)
	}
	out, err := envelope.NewMessage(resp)
	if err != nil {
		return nil, envelope.Permanent(err)
	}
	h.logger.Info("prompt answered", slog.String("event_id", promptID), slog.String("response_id", out.UUID))
	return []*message.Message{out}, nil
}
