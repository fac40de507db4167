package main_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/internal/testcluster"
	"github.com/33god/bloodbank-go/internal/testenv"
	"github.com/33god/bloodbank-go/middleware"
)

// clusterResponses records when each agent.thread.response arrived.
type clusterResponses struct {
	mu       sync.Mutex
	total    int
	byPrompt map[string]int
	arrivals []time.Time
}

func (r *clusterResponses) snapshot() (total, distinct int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total, len(r.byPrompt)
}

// TestDisruptive_nodeLossOnQuorumCluster runs the command processor on a
// three-node cluster with quorum queues, RABBIT_URL listing all three
// nodes, and kills (SIGKILL) the node that leads its queue, and that it is
// connected to, while 5,000 commands stream through. Every command must be
// answered, its response routed, and its correlation link in Redis.
// Then it kills the node the processor moved to, the second node lost
// but the first one back, and the processor keeps answering.
func TestDisruptive_nodeLossOnQuorumCluster(t *testing.T) {
	if os.Getenv("BB_TEST_DISRUPTIVE") != "1" {
		t.Skip("kills RabbitMQ nodes: set BB_TEST_DISRUPTIVE=1 (make test-restart)")
	}
	const commands = 5000
	redisAddr := testenv.Redis(t)
	cl := testcluster.StartRabbitMQ(t, 1, 2, 3)
	exchange := "bbtest." + uuid.NewString()[:8]
	queue := exchange + ".command_processor"

	host, port, _ := net.SplitHostPort(redisAddr)
	rp, _ := strconv.Atoi(port)
	rdb, err := correlation.NewUniversalClient(correlation.Settings{Host: host, Port: rp})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uuid.UUID, commands+500)
	var keys []string
	for i := range ids {
		ids[i] = uuid.New()
		keys = append(keys, correlation.DefaultKeyPrefix+"reverse:"+ids[i].String(),
			correlation.DefaultKeyPrefix+"forward:"+cqrs.SideEffectID(thread.RoutingKeyResponse, ids[i], 0).String(),
			middleware.DefaultDedupKeyPrefix+"command_processor:"+thread.RoutingKeyPrompt+":"+ids[i].String())
	}
	t.Cleanup(func() {
		for i := 0; i < len(keys); i += 500 {
			_ = rdb.Del(context.Background(), keys[i:min(i+500, len(keys))]...).Err()
		}
		_ = rdb.Close()
	})

	// The first URL is bbq1: the processor connects there, declares its
	// queue there, and the queue's leader is local to the declaring node.
	p := start(t, "RABBIT_URL="+cl.URLs(1, 2, 3), "EXCHANGE_NAME="+exchange, "BB_QUEUE_TYPE=quorum",
		"REDIS_HOST="+host, "REDIS_PORT="+port, "BB_PUBLISH_TIMEOUT=30s")
	p.waitReady(60 * time.Second)
	leader := cl.Leader(queue)
	// A node that survives both kills: the test's own publisher and observer
	// live there. Not leader+1, where the processor goes first.
	other := (leader+1)%3 + 1
	t.Logf("queue %s led by bbq%d; the test publishes and observes through bbq%d", queue, leader, other)

	raw, err := amqp091.Dial(cl.URL(other))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	got := observeResponses(t, raw, exchange)

	published := make(chan error, 1)
	go func() { published <- publishPromptsRetrying(raw, exchange, ids[:commands]) }()

	waitDistinct(t, got, 60*time.Second, commands/4)
	killed := time.Now()
	cl.Kill(leader)
	_, before := got.snapshot()
	t.Logf("SIGKILL of bbq%d after %d commands answered", leader, before)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	waitDistinct(t, got, 90*time.Second, commands)
	allDone := time.Since(killed)
	total, distinct := got.snapshot()

	// Recovery: the longest silence between two responses after the kill.
	got.mu.Lock()
	var gap time.Duration
	for i := 1; i < len(got.arrivals); i++ {
		if got.arrivals[i].After(killed) {
			prev := got.arrivals[i-1]
			if prev.Before(killed) {
				prev = killed
			}
			gap = max(gap, got.arrivals[i].Sub(prev))
		}
	}
	got.mu.Unlock()
	checkLinks(t, rdb, ids[:commands])
	newLeader := cl.Leader(queue)
	t.Logf("node loss: %d commands, 0 lost (%d answered), %d duplicate responses; longest gap after the kill %s; all answered %s after it; new leader bbq%d",
		commands, distinct, total-distinct, gap.Round(time.Millisecond), allDone.Round(time.Millisecond), newLeader)

	// Any one node: bring the killed node back, then kill the node the
	// processor's consumer is on now, and it answers 500 more.
	cl.Start(leader)
	now := 1 // the first URL, unless the consumer moved
	for _, l := range p.log() {
		if c, _ := l["connection"].(string); l["msg"] == "RabbitMQ reconnected" && strings.HasSuffix(c, "consumer") {
			u, _ := l["url"].(string)
			port, _ := strconv.Atoi(strings.TrimSuffix(u[strings.LastIndex(u, ":")+1:], "/"))
			now = port - 5680
			t.Logf("the processor's consumer reconnected to %s", u)
		}
	}
	if now == other {
		t.Logf("the consumer moved to bbq%d, where the test's client is; killing the queue leader bbq%d instead", now, cl.Leader(queue))
		now = cl.Leader(queue)
	}
	if now == other {
		t.Logf("skipping the second kill: bbq%d is both the test's node and the leader", now)
		return
	}
	cl.Kill(now)
	killed = time.Now()
	if err := publishPromptsRetrying(raw, exchange, ids[commands:]); err != nil {
		t.Fatal(err)
	}
	waitDistinct(t, got, 60*time.Second, commands+500)
	checkLinks(t, rdb, ids[commands:])
	total, distinct = got.snapshot()
	t.Logf("second loss (bbq%d): 500 more commands answered within %s, 0 lost, %d duplicate responses in all",
		now, time.Since(killed).Round(time.Millisecond), total-distinct)
}

// observeResponses consumes every agent.thread.response from a queue of
// the test's own on the raw connection's node.
func observeResponses(t *testing.T, raw *amqp091.Connection, exchange string) *clusterResponses {
	t.Helper()
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q := exchange + ".observer"
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp091.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, thread.RoutingKeyResponse, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(500, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &clusterResponses{byPrompt: map[string]int{}}
	go func() {
		for d := range deliveries {
			var body struct {
				CorrelationIDs []string `json:"correlation_ids"`
			}
			_ = json.Unmarshal(d.Body, &body)
			r.mu.Lock()
			r.total++
			if len(body.CorrelationIDs) == 1 {
				r.byPrompt[body.CorrelationIDs[0]]++
			}
			r.arrivals = append(r.arrivals, time.Now())
			r.mu.Unlock()
			_ = d.Ack(false)
		}
	}()
	return r
}

func waitDistinct(t *testing.T, r *clusterResponses, timeout time.Duration, want int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, distinct := r.snapshot()
		if distinct >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d of %d commands answered", timeout, distinct, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishPromptsRetrying publishes one prompt per id with confirms, in
// batches, and publishes again whatever the broker nacked or did not
// confirm in time: while a queue elects a new leader it may refuse.
func publishPromptsRetrying(raw *amqp091.Connection, exchange string, ids []uuid.UUID) error {
	var ch *amqp091.Channel
	defer func() {
		if ch != nil {
			_ = ch.Close()
		}
	}()
	pending := ids
	for len(pending) > 0 {
		// A fresh channel after a failed batch: a channel publishing to a
		// quorum queue whose leader died can be left waiting for confirms
		// the broker will never send (seen with RabbitMQ 3.10).
		if ch == nil {
			var err error
			if ch, err = raw.Channel(); err != nil {
				return err
			}
			if err := ch.Confirm(false); err != nil {
				return err
			}
		}
		batch := pending[:min(250, len(pending))]
		pending = pending[len(batch):]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		confirms := make([]*amqp091.DeferredConfirmation, len(batch))
		for i, id := range batch {
			var err error
			if confirms[i], err = ch.PublishWithDeferredConfirmWithContext(ctx, exchange, thread.RoutingKeyPrompt, false, false, amqp091.Publishing{
				ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp091.Persistent,
				MessageId: id.String(), Body: pythonPrompt(id, "prompt"),
			}); err != nil {
				cancel()
				return err
			}
		}
		failed := false
		for i, c := range confirms {
			if ok, err := c.WaitContext(ctx); !ok || err != nil {
				pending = append(pending, batch[i])
				failed = true
			}
		}
		cancel()
		if failed {
			_ = ch.Close()
			ch = nil
		}
	}
	return nil
}

// checkLinks waits until the correlation link of every prompt's response
// is in Redis: the processor records it after the broker confirmed the
// response.
func checkLinks(t *testing.T, rdb redis.UniversalClient, ids []uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	missing := ids
	for len(missing) > 0 {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(missing))
		for i, id := range missing {
			cmds[i] = pipe.Get(ctx, correlation.DefaultKeyPrefix+"forward:"+cqrs.SideEffectID(thread.RoutingKeyResponse, id, 0).String())
		}
		_, _ = pipe.Exec(ctx)
		var still []uuid.UUID
		for i, c := range cmds {
			var link struct {
				Parents []string `json:"parent_event_ids"`
			}
			if json.Unmarshal([]byte(c.Val()), &link) != nil || len(link.Parents) != 1 || link.Parents[0] != missing[i].String() {
				still = append(still, missing[i])
			}
		}
		missing = still
		if len(missing) > 0 && time.Now().After(deadline) {
			t.Fatalf("%d responses have no correlation link in Redis, e.g. the response to %s", len(missing), missing[0])
		}
		if len(missing) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
}
