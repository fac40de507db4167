package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/transport"
)

// ConnectionConfig configures a Connection.
type ConnectionConfig struct {
	// URL is the AMQP URL, or several separated by commas (SplitURLs): the
	// nodes of one cluster. Dial takes the first that answers; after losing
	// the connection it tries the next one first, round-robin. Required.
	URL string
	// Name is shown in the RabbitMQ management UI. Optional.
	Name string
	// ConnectTimeout bounds how long Dial keeps retrying an unreachable
	// broker at start. Optional; default 30s.
	ConnectTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval. Optional; default 10s.
	Heartbeat time.Duration
	// Logger. Optional; default logs nothing.
	Logger *slog.Logger
}

func (c *ConnectionConfig) setDefaults() {
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Connection is one AMQP connection that comes back by itself: when the
// broker goes away it redials with backoff until Close, and everything that
// asks it for a channel waits for the new connection.
type Connection struct {
	cfg      ConnectionConfig
	urls     []string
	redacted string // every URL, for errors that concern them all

	mu     sync.Mutex
	conn   *amqp091.Connection
	node   int           // index in urls of the broker conn is connected to
	ready  chan struct{} // closed while connected
	closed chan struct{}
	once   sync.Once
}

// Dial connects to the broker, retrying with backoff for at most
// cfg.ConnectTimeout or until ctx ends, and logs each wait so an operator
// sees why a service has not started yet.
func Dial(ctx context.Context, cfg ConnectionConfig) (*Connection, error) {
	cfg.setDefaults()
	if cfg.URL == "" {
		return nil, errors.New("cannot connect to RabbitMQ: no URL (set RABBIT_URL)")
	}
	urls := SplitURLs(cfg.URL)
	if len(urls) == 0 {
		return nil, errors.New("cannot connect to RabbitMQ: no URL (set RABBIT_URL)")
	}
	for _, u := range urls {
		if _, err := amqp091.ParseURI(u); err != nil {
			return nil, fmt.Errorf("cannot connect to RabbitMQ: RABBIT_URL %s is invalid: %s", RedactURL(u), redact(err.Error(), cfg.URL))
		}
	}
	c := &Connection{cfg: cfg, urls: urls, redacted: RedactURL(cfg.URL), ready: make(chan struct{}), closed: make(chan struct{})}
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	conn, node, err := c.dialLoop(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to RabbitMQ at %s within %s: %w", c.redacted, cfg.ConnectTimeout, err)
	}
	c.setConn(conn, node)
	if len(urls) > 1 {
		c.cfg.Logger.Info("RabbitMQ connected", slog.String("url", RedactURL(urls[node])), slog.String("connection", cfg.Name))
	}
	return c, nil
}

// dialLoop dials the URLs round-robin, from urls[first], until one
// answers, ctx ends or the connection is closed. It backs off only after a
// whole round failed: another node of the cluster is worth trying at once.
// It returns the connection and the index of its URL.
func (c *Connection) dialLoop(ctx context.Context, first int) (*amqp091.Connection, int, error) {
	props := amqp091.NewConnectionProperties()
	if c.cfg.Name != "" {
		props.SetClientConnectionName(c.cfg.Name)
	}
	// A node that drops packets instead of refusing would hold the whole
	// list up for amqp091's default 30s.
	config := amqp091.Config{Heartbeat: c.cfg.Heartbeat, Properties: props, Locale: "en_US", Dial: amqp091.DefaultDial(10 * time.Second)}
	for attempt := 0; ; attempt++ {
		var err error
		for k := range c.urls {
			i := (first + k) % len(c.urls)
			var conn *amqp091.Connection
			if conn, err = amqp091.DialConfig(c.urls[i], config); err == nil {
				return conn, i, nil
			}
			err = errors.New(redact(err.Error(), c.cfg.URL))
			if len(c.urls) > 1 {
				c.cfg.Logger.Warn("RabbitMQ node not reachable, trying the next", slog.String("url", RedactURL(c.urls[i])), slog.String("error", err.Error()))
			}
		}
		wait := backoffDelay(attempt, 100*time.Millisecond, 5*time.Second)
		c.cfg.Logger.Warn("RabbitMQ not reachable, retrying", slog.String("url", c.redacted),
			slog.String("error", err.Error()), slog.Duration("retry_in", wait), slog.Int("attempt", attempt+1))
		select {
		case <-ctx.Done():
			return nil, 0, err
		case <-c.closed:
			return nil, 0, transport.ErrClosed
		case <-time.After(wait):
		}
	}
}

// backoffDelay is exponential backoff with full jitter, capped.
func backoffDelay(attempt int, base, limit time.Duration) time.Duration {
	d := base << min(attempt, 20)
	if d > limit || d <= 0 {
		d = limit
	}
	return d/2 + rand.N(d/2+1)
}

func (c *Connection) setConn(conn *amqp091.Connection, node int) {
	c.mu.Lock()
	c.conn, c.node = conn, node
	close(c.ready)
	c.mu.Unlock()
	notify := conn.NotifyClose(make(chan *amqp091.Error, 1))
	go c.watch(conn, notify)
}

// watch redials after the broker closes the connection.
func (c *Connection) watch(conn *amqp091.Connection, notify <-chan *amqp091.Error) {
	var amqpErr *amqp091.Error
	select {
	case amqpErr = <-notify:
	case <-c.closed:
		return
	}
	c.mu.Lock()
	if c.conn == conn {
		c.ready = make(chan struct{})
	}
	lost := c.node
	c.mu.Unlock()
	select {
	case <-c.closed:
		return
	default:
	}
	reason := "closed"
	if amqpErr != nil {
		reason = amqpErr.Error()
	}
	c.cfg.Logger.Warn("RabbitMQ connection lost, reconnecting", slog.String("url", RedactURL(c.urls[lost])),
		slog.String("reason", redact(reason, c.cfg.URL)), slog.String("connection", c.cfg.Name))
	// The node just lost is likely still down: start with the next one.
	next, node, err := c.dialLoop(context.Background(), (lost+1)%len(c.urls))
	if err != nil {
		return // closed while reconnecting
	}
	c.cfg.Logger.Info("RabbitMQ reconnected", slog.String("url", RedactURL(c.urls[node])), slog.String("connection", c.cfg.Name))
	c.setConn(next, node)
}

// Channel opens a channel, waiting for a reconnect in progress until ctx ends.
func (c *Connection) Channel(ctx context.Context) (*amqp091.Channel, error) {
	for {
		c.mu.Lock()
		ready, conn := c.ready, c.conn
		c.mu.Unlock()
		select {
		case <-c.closed:
			return nil, transport.ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot open a channel: RabbitMQ at %s is not reachable: %w", c.redacted, ctx.Err())
		case <-ready:
		}
		ch, err := conn.Channel()
		if err == nil {
			return ch, nil
		}
		if !conn.IsClosed() {
			return nil, fmt.Errorf("cannot open a channel: %w", err)
		}
		// The connection died between ready and Channel: wait for the next.
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// Connected reports whether the connection is up now.
func (c *Connection) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.ready:
		return !c.conn.IsClosed()
	default:
		return false
	}
}

// URL returns the URL of the node the connection is on (or was on, while
// it reconnects), its password redacted.
func (c *Connection) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return RedactURL(c.urls[c.node])
}

// Close closes the connection and stops reconnecting.
func (c *Connection) Close() error {
	var err error
	c.once.Do(func() {
		close(c.closed)
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			err = conn.Close()
		}
	})
	return err
}
