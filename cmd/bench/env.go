package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

const defaultRabbitURL = "amqp://guest:guest@127.0.0.1:5672/"

// env is one benchmark run: its connections, its names and everything it
// must delete at the end.
type env struct {
	o      options
	runID  string
	logger *slog.Logger

	cfg           bus.Config // the project's settings, from the environment
	rabbitURL     string
	rabbitVersion string
	admin         *amqp091.Connection // declares, purges, deletes

	redis     redis.UniversalClient
	redisAddr string

	tmpl     *templates
	bodySize int

	mu        sync.Mutex
	exchanges []string
	queues    []string
}

func newEnv(ctx context.Context, o options, runID string, logger *slog.Logger) (*env, error) {
	if runID == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		runID = hex.EncodeToString(b)
	}
	cfg, err := bus.LoadConfig(os.Environ(), "")
	if err != nil {
		return nil, err
	}
	settings, err := correlation.LoadSettings(os.Environ(), "")
	if err != nil {
		return nil, err
	}
	if cfg.RabbitURL == "" {
		cfg.RabbitURL = defaultRabbitURL
	}
	cfg.ServiceName = "bench"
	cfg.Prefetch = o.prefetch
	cfg.Consumers = o.consumers
	if o.pubChannels > 0 {
		cfg.PublisherChannels = o.pubChannels
	}
	cfg.DrainTimeout = 10 * time.Second
	cfg.ConnectTimeout = 10 * time.Second
	e := &env{o: o, runID: runID, logger: logger, cfg: cfg, rabbitURL: cfg.RabbitURL}

	e.admin, err = amqp091.Dial(e.rabbitURL)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to RabbitMQ at %s: %w", amqp.RedactURL(e.rabbitURL), err)
	}
	if v, ok := e.admin.Properties["version"].(string); ok {
		e.rabbitVersion = v
	}
	e.redis, err = correlation.NewUniversalClient(settings)
	if err != nil {
		_ = e.admin.Close()
		return nil, err
	}
	e.redisAddr = fmt.Sprintf("%s:%d", settings.Host, settings.Port)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.redis.Ping(pctx).Err(); err != nil {
		_ = e.admin.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %w", e.redisAddr, err)
	}
	if e.tmpl, err = newTemplates(o.size); err != nil {
		return nil, err
	}
	e.bodySize = len(e.tmpl.prompt)
	return e, nil
}

// name is a name of this run: bbbench.<run>.<parts...>.
func (e *env) name(parts ...string) string {
	return "bbbench." + e.runID + "." + strings.Join(parts, ".")
}

// topo holds every exchange and queue name a run uses, in one place, so
// that -cleanup can delete what an interrupted run left behind.
type topo struct {
	pubRaw, pubRawSink, pubBB, pubBBSink          string
	consRaw, consRawQ, consBB, consBBQ            string
	cmdRaw, cmdRawQ, cmdRawSink                   string
	cmdBB, cmdBBQ, cmdBBSink                      string
	latRaw, latRawQ, latBB, latBBQ, rss, rssQueue string
	procBB, procBBQ, procBBSink                   string // the command-processor child
	allocRaw, allocRawQ, allocBB, allocBBQ        string
	wmPub, wmPubSink, pyPub, pyPubSink            string // the peers' publishing
	wmCons, wmConsQ, bareBB, bareBBQ              string // the peers' consuming
}

func (e *env) topo() topo {
	t := topo{
		pubRaw: e.name("pub", "raw"), pubRawSink: e.name("pub", "raw", "sink"),
		pubBB: e.name("pub", "bb"), pubBBSink: e.name("pub", "bb", "sink"),
		consRaw: e.name("consume", "raw"), consRawQ: e.name("consume", "raw", "q"), consBB: e.name("consume", "bb"),
		cmdRaw: e.name("cmd", "raw"), cmdRawQ: e.name("cmd", "raw", "q"), cmdRawSink: e.name("cmd", "raw", "responses"),
		cmdBB: e.name("cmd", "bb"), cmdBBSink: e.name("cmd", "bb", "responses"),
		latRaw: e.name("lat", "raw"), latRawQ: e.name("lat", "raw", "q"), latBB: e.name("lat", "bb"),
		rss:    e.name("rss"),
		procBB: e.name("proc", "bb"), procBBSink: e.name("proc", "bb", "responses"),
		allocRaw: e.name("alloc", "raw"), allocRawQ: e.name("alloc", "raw", "q"), allocBB: e.name("alloc", "bb"),
		wmPub: e.name("peer", "wm", "pub"), wmPubSink: e.name("peer", "wm", "pub", "sink"),
		pyPub: e.name("peer", "py", "pub"), pyPubSink: e.name("peer", "py", "pub", "sink"),
		wmCons: e.name("peer", "wm", "consume"), wmConsQ: e.name("peer", "wm", "consume", "q"), bareBB: e.name("peer", "bb", "consume"),
	}
	t.procBBQ = bus.ServiceQueueName(t.procBB, processorService(e.runID))
	t.allocBBQ = bus.ServiceQueueName(t.allocBB, "consume")
	t.bareBBQ = bus.ServiceQueueName(t.bareBB, "consume")
	t.consBBQ = bus.ServiceQueueName(t.consBB, "consume")
	t.cmdBBQ = bus.ServiceQueueName(t.cmdBB, "command")
	t.latBBQ = bus.ServiceQueueName(t.latBB, "latency")
	t.rssQueue = bus.ServiceQueueName(t.rss, "rss")
	return t
}

// trackAll records every name of the run, for -cleanup.
func (e *env) trackAll() {
	t := e.topo()
	e.track(t.pubRaw, t.pubRawSink)
	e.track(t.pubBB, t.pubBBSink)
	e.track(t.consRaw, t.consRawQ)
	e.track(t.cmdRaw, t.cmdRawQ, t.cmdRawSink)
	e.track(t.cmdBB, t.cmdBBSink)
	e.track(t.latRaw, t.latRawQ)
	e.trackService(t.consBB, t.consBBQ)
	e.trackService(t.cmdBB, t.cmdBBQ)
	e.trackService(t.latBB, t.latBBQ)
	e.trackService(t.rss, t.rssQueue)
	e.track(t.procBB, t.procBBSink)
	e.trackService(t.procBB, t.procBBQ)
	e.track(t.allocRaw, t.allocRawQ)
	e.trackService(t.allocBB, t.allocBBQ)
	e.track(t.wmPub, t.wmPubSink)
	e.track(t.pyPub, t.pyPubSink)
	e.track(t.wmCons, t.wmConsQ)
	e.trackService(t.bareBB, t.bareBBQ)
}

// redisPrefix starts every Redis key of this run.
func (e *env) redisPrefix() string { return "bbbench:" + e.runID + ":" }

func (e *env) track(exchange string, queues ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if exchange != "" && !contains(e.exchanges, exchange) {
		e.exchanges = append(e.exchanges, exchange)
	}
	for _, q := range queues {
		if !contains(e.queues, q) {
			e.queues = append(e.queues, q)
		}
	}
}

// trackService records a service queue and the queues the reliability
// middleware declares next to it.
func (e *env) trackService(exchange, queue string) {
	qs := []string{queue, reliability.PoisonQueueName(queue)}
	for _, d := range reliability.DefaultRedeliveryDelays {
		qs = append(qs, reliability.RetryQueueName(queue, d))
	}
	e.track(exchange, qs...)
}

func (e *env) withChannel(fn func(ch *amqp091.Channel) error) error {
	ch, err := e.admin.Channel()
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	return fn(ch)
}

// declare declares a durable topic exchange and a durable queue bound to it,
// with the flags of amqp.Topology, so that the project's own declarations of
// the same names agree.
func (e *env) declare(exchange, queue string, keys ...string) error {
	e.track(exchange, queue)
	return e.withChannel(func(ch *amqp091.Channel) error {
		// The project's topology, queue type included (-cluster: quorum).
		return amqp.Topology{Exchange: exchange, QueueType: e.cfg.QueueType}.DeclareQueue(ch, queue, keys...)
	})
}

func (e *env) purge(queues ...string) error {
	return e.withChannel(func(ch *amqp091.Channel) error {
		for _, q := range queues {
			if _, err := ch.QueuePurge(q, false); err != nil {
				return fmt.Errorf("cannot purge %s: %w", q, err)
			}
		}
		return nil
	})
}

// waitReady waits until queue holds n ready messages (a prefill is
// confirmed before it returns, so this is normally immediate).
func (e *env) waitReady(ctx context.Context, queue string, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got int
		err := e.withChannel(func(ch *amqp091.Channel) error {
			q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
			got = q.Messages
			return err
		})
		if err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queue %s holds %d messages, want %d", queue, got, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cleanup deletes every queue and exchange of the run and its Redis keys.
func (e *env) cleanup(ctx context.Context) error {
	var errs []error
	e.mu.Lock()
	queues, exchanges := e.queues, e.exchanges
	e.mu.Unlock()
	if e.admin == nil || e.admin.IsClosed() {
		// The broker may have dropped the connection (a restart): the
		// names must go all the same, so wait for it while ctx allows.
		for {
			conn, err := amqp091.Dial(e.rabbitURL)
			if err == nil {
				e.admin = conn
				break
			}
			select {
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("cannot reconnect to delete %d queues and %d exchanges (run go run ./cmd/bench -cleanup %s): %w",
					len(queues), len(exchanges), e.runID, err))
			case <-time.After(time.Second):
				continue
			}
			break
		}
	}
	if e.admin != nil && !e.admin.IsClosed() {
		err := e.withChannel(func(ch *amqp091.Channel) error {
			for _, q := range queues {
				// A queue that was never declared closes the channel with
				// 404 on some servers; delete each on its own channel.
				if c, err := e.admin.Channel(); err == nil {
					_, _ = c.QueueDelete(q, false, false, false)
					_ = c.Close()
				}
			}
			for _, x := range exchanges {
				if err := ch.ExchangeDelete(x, false, false); err != nil {
					return fmt.Errorf("cannot delete exchange %s: %w", x, err)
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
		_ = e.admin.Close()
	}
	if e.redis != nil {
		if err := deleteKeys(ctx, e.redis, e.redisPrefix()+"*"); err != nil {
			errs = append(errs, err)
		}
		_ = e.redis.Close()
	}
	return errors.Join(errs...)
}

// deleteKeys deletes the keys matching pattern, on every master of a Redis
// Cluster: there SCAN sees the keys of the node it reaches only, and a
// multi-key UNLINK fails unless its keys share a slot, so each node is
// scanned and its keys unlinked one per command, pipelined.
func deleteKeys(ctx context.Context, c redis.UniversalClient, pattern string) error {
	onNode := func(ctx context.Context, node redis.UniversalClient) error {
		iter := node.Scan(ctx, 0, pattern, 10000).Iterator()
		pipe := node.Pipeline()
		for iter.Next(ctx) {
			pipe.Unlink(ctx, iter.Val())
			if pipe.Len() >= 1000 {
				if _, err := pipe.Exec(ctx); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return onNode(ctx, node) })
	}
	return onNode(ctx, c)
}
