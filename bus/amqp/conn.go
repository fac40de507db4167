package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/transport"
)

// ConnectionConfig configures a Connection.
type ConnectionConfig struct {
	// URL is the AMQP URL. Required.
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
	redacted string

	mu     sync.Mutex
	conn   *amqp091.Connection
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
	if _, err := amqp091.ParseURI(cfg.URL); err != nil {
		return nil, fmt.Errorf("cannot connect to RabbitMQ: RABBIT_URL %s is invalid: %s", RedactURL(cfg.URL), redact(err.Error(), cfg.URL))
	}
	c := &Connection{cfg: cfg, redacted: RedactURL(cfg.URL), ready: make(chan struct{}), closed: make(chan struct{})}
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	conn, err := c.dialLoop(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to RabbitMQ at %s within %s: %w", c.redacted, cfg.ConnectTimeout, err)
	}
	c.setConn(conn)
	return c, nil
}

// dialLoop dials until it succeeds, ctx ends or the connection is closed.
func (c *Connection) dialLoop(ctx context.Context) (*amqp091.Connection, error) {
	props := amqp091.NewConnectionProperties()
	if c.cfg.Name != "" {
		props.SetClientConnectionName(c.cfg.Name)
	}
	for attempt := 0; ; attempt++ {
		conn, err := amqp091.DialConfig(c.cfg.URL, amqp091.Config{Heartbeat: c.cfg.Heartbeat, Properties: props, Locale: "en_US"})
		if err == nil {
			return conn, nil
		}
		err = errors.New(redact(err.Error(), c.cfg.URL))
		wait := backoffDelay(attempt, 100*time.Millisecond, 5*time.Second)
		c.cfg.Logger.Warn("RabbitMQ not reachable, retrying", slog.String("url", c.redacted),
			slog.String("error", err.Error()), slog.Duration("retry_in", wait), slog.Int("attempt", attempt+1))
		select {
		case <-ctx.Done():
			return nil, err
		case <-c.closed:
			return nil, transport.ErrClosed
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

func (c *Connection) setConn(conn *amqp091.Connection) {
	c.mu.Lock()
	c.conn = conn
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
	c.cfg.Logger.Warn("RabbitMQ connection lost, reconnecting", slog.String("url", c.redacted), slog.String("reason", reason))
	next, err := c.dialLoop(context.Background())
	if err != nil {
		return // closed while reconnecting
	}
	c.cfg.Logger.Info("RabbitMQ reconnected", slog.String("url", c.redacted))
	c.setConn(next)
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

// RedactURL returns u with its password replaced, for logs and errors.
func RedactURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return parsed.Redacted()
}

// redact removes the URL and its password from a message, in case a
// library quoted either.
func redact(msg, rawURL string) string {
	parsed, err := url.Parse(rawURL)
	if err != nil {
		return msg
	}
	msg = strings.ReplaceAll(msg, rawURL, parsed.Redacted())
	if pw, ok := parsed.User.Password(); ok && pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return msg
}
