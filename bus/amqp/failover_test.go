package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/transport"
)

// cutProxy forwards TCP connections to the broker until cut, when it
// closes its listener and every connection at once: to a client it looks
// like a node that died. Two of them in front of one broker make a list of
// two "nodes" without touching the broker.
type cutProxy struct {
	ln     net.Listener
	gate   sync.RWMutex // held by mute: nothing from the broker reaches the client
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(p.cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			if !p.track(c, up) {
				return
			}
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { p.copyGated(c, up); _ = c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	p.conns = append(p.conns, cs...)
	return true
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	_ = p.ln.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// copyGated copies broker → client, holding what it read while muted.
func (p *cutProxy) copyGated(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate.RLock()
			_, werr := dst.Write(buf[:n])
			p.gate.RUnlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *cutProxy) mute()   { p.gate.Lock() }
func (p *cutProxy) unmute() { p.gate.Unlock() }

// With RABBIT_URL listing two nodes, losing the first moves the connection
// to the second; consumers resume there, and every publish whose confirm
// was pending when the connection died is reported failed to its caller,
// who publishes it again: every message arrives, none is dropped silently.
func TestAMQP_failoverToNextURL(t *testing.T) {
	r := newRabbit(t)
	base, err := url.Parse(r.url)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newCutProxy(t, base.Host), newCutProxy(t, base.Host)
	node := func(addr string) string { u := *base; u.Host = addr; return u.String() }
	list := node(a.addr()) + " , " + node(b.addr())

	var logs syncBuffer
	conn, err := amqp.Dial(context.Background(), amqp.ConnectionConfig{URL: list, ConnectTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if !strings.Contains(conn.URL(), a.addr()) {
		t.Fatalf("connected to %s, want the first URL (%s)", conn.URL(), a.addr())
	}

	topo := amqp.Topology{Exchange: r.exchange}
	queue := r.queue("failover")
	sub, err := amqp.NewSubscriber(conn, amqp.SubscriberConfig{Topology: topo, Marshaler: wamqp.DefaultMarshaler{},
		SubscriberConfig: transport.SubscriberConfig{QueueName: func(string) string { return queue }, Consumers: 50, DrainTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "failover.test")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := amqp.NewPublisher(conn, amqp.PublisherConfig{Topology: topo, Marshaler: wamqp.DefaultMarshaler{}, ConfirmTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })

	const n = 3000
	received := make(chan string, 2*n)
	go func() {
		for m := range msgs {
			received <- m.UUID
			m.Ack()
		}
	}()

	// Publish asynchronously, cut the first node a third of the way in,
	// and publish again whatever was reported failed, as a caller would.
	failed := 0
	pending := make([]string, 0, n)
	for i := range n {
		pending = append(pending, fmt.Sprintf("msg-%05d", i))
	}
	for round := 0; len(pending) > 0; round++ {
		if round > 20 {
			t.Fatalf("%d messages still not confirmed after 20 rounds", len(pending))
		}
		type inflight struct {
			id string
			c  *amqp.Confirmation
		}
		var flights []inflight
		var retry []string
		for i, id := range pending {
			if round == 0 && i == n/3 {
				a.cut()
			}
			c, err := pub.PublishAsync(ctx, "failover.test", message.NewMessage(id, []byte(id)))
			if err != nil {
				retry = append(retry, id)
				continue
			}
			flights = append(flights, inflight{id, c})
		}
		for _, f := range flights {
			if err := f.c.Wait(ctx); err != nil {
				if !errors.Is(err, transport.ErrNotConfirmed) {
					t.Errorf("publish %s failed with %v, want ErrNotConfirmed", f.id, err)
				}
				retry = append(retry, f.id)
			}
		}
		failed += len(retry)
		pending = retry
	}
	t.Logf("%d publishes reported failed across the cut, all published again", failed)

	seen := map[string]int{}
	for len(seen) < n {
		select {
		case id := <-received:
			seen[id]++
		case <-ctx.Done():
			t.Fatalf("received %d of %d distinct messages", len(seen), n)
		}
	}
	if !strings.Contains(conn.URL(), b.addr()) {
		t.Errorf("after the cut the connection is on %s, want the second URL (%s)", conn.URL(), b.addr())
	}
	if !strings.Contains(logs.String(), "RabbitMQ reconnected") || strings.Contains(logs.String(), ":guest@") {
		t.Errorf("want a reconnect logged with the password masked; logs:\n%s", logs.String())
	}
}

// A publish whose confirm does not come within ConfirmTimeout fails, and
// its channel is replaced: the broker may have lost track of it, and the
// next publish must not wait on the same channel again.
func TestAMQP_confirmTimeoutReplacesTheChannel(t *testing.T) {
	r := newRabbit(t)
	base, err := url.Parse(r.url)
	if err != nil {
		t.Fatal(err)
	}
	px := newCutProxy(t, base.Host)
	u := *base
	u.Host = px.addr()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	conn, err := amqp.Dial(context.Background(), amqp.ConnectionConfig{URL: u.String(), ConnectTimeout: 5 * time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	topo := amqp.Topology{Exchange: r.exchange}
	pub, err := amqp.NewPublisher(conn, amqp.PublisherConfig{Topology: topo, Marshaler: wamqp.DefaultMarshaler{},
		Channels: 1, ConfirmTimeout: 500 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	if err := pub.Publish("confirm.test", message.NewMessage("warm", nil)); err != nil {
		t.Fatal(err)
	}

	px.mute() // the confirm is held back, as a broker that lost track of it
	err = pub.Publish("confirm.test", message.NewMessage("held", nil))
	if err == nil {
		t.Fatal("a publish with no confirm succeeded")
	}
	px.unmute()
	if !strings.Contains(logs.String(), "replacing the channel") {
		t.Errorf("the channel was not replaced; logs:\n%s", logs.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := pub.Publish("confirm.test", message.NewMessage("after", nil))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publishing after the replaced channel: %v", err)
		}
	}
}

// syncBuffer is a strings.Builder safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// With quorum queues a message returned to its service queue
// QuorumDeliveryLimit times goes to the poison queue, and a delay queue
// hands its messages back to the service queue after the delay.
func TestAMQP_quorumSafetyNets(t *testing.T) {
	r := newRabbit(t)
	topo := amqp.Topology{Exchange: r.exchange, QueueType: amqp.QueueQuorum}
	service := r.queue("qsvc")
	poison := r.queue("qsvc" + amqp.PoisonQueueSuffix)
	delay := r.queue("qsvc.retry.200ms")
	raw := r.raw()
	defer raw.Close()
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.DeclareQueue(ch, service, "qsvc.#"); err != nil {
		t.Fatal(err)
	}
	if err := topo.DeclareParkingQueue(ch, poison); err != nil {
		t.Fatal(err)
	}
	if err := topo.DeclareDelayQueue(ch, delay, 200*time.Millisecond, service); err != nil {
		t.Fatal(err)
	}
	// Declaring again with the same arguments is what every restart does.
	if err := topo.DeclareQueue(ch, service, "qsvc.#"); err != nil {
		t.Fatalf("redeclaring the quorum service queue: %v", err)
	}

	get := func(queue string) (amqp091.Delivery, bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			d, ok, err := ch.Get(queue, false)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return d, true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return amqp091.Delivery{}, false
	}

	// Delay queue → service queue.
	if err := ch.PublishWithContext(context.Background(), "", delay, false, false, amqp091.Publishing{MessageId: "delayed", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	d, ok := get(service)
	if !ok || d.MessageId != "delayed" {
		t.Fatalf("the delay queue did not hand its message to the service queue (got %q)", d.MessageId)
	}
	// Returned again and again → poison queue.
	for i := 0; ; i++ {
		if i > amqp.QuorumDeliveryLimit+1 {
			t.Fatalf("still delivered after %d returns", i)
		}
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
		next, ok, err := ch.Get(service, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			// Give the queue a moment: it may not have settled the return.
			time.Sleep(100 * time.Millisecond)
			if next, ok, err = ch.Get(service, false); err != nil {
				t.Fatal(err)
			}
		}
		if !ok {
			t.Logf("dead-lettered after %d returns", i+1)
			break
		}
		d = next
	}
	parked, ok := get(poison)
	if !ok || parked.MessageId != "delayed" {
		t.Fatalf("the message over the delivery limit is not in the poison queue")
	}
	_ = parked.Ack(false)
}
