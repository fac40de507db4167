package amqp

import (
	"cmp"
	"fmt"
	"regexp"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Defaults of EventLogConfig.
const (
	DefaultEventLogMaxAge   = "7D"
	DefaultEventLogMaxBytes = 1_000_000_000
)

// EventLogConfig is the retention of the event log. A stream drops whole
// segments, so it may keep somewhat more than the limits say.
type EventLogConfig struct {
	// MaxAge is the stream's x-max-age: a number and a unit, Y, M, D, h,
	// m or s ("7D", "12h"). Optional; default DefaultEventLogMaxAge.
	MaxAge string
	// MaxBytes is the stream's x-max-length-bytes. Optional; default
	// DefaultEventLogMaxBytes (1 GB).
	MaxBytes int64
}

var maxAgeSyntax = regexp.MustCompile(`^[0-9]+[YMDhms]$`)

// Validate reports a MaxAge RabbitMQ would refuse, or a negative MaxBytes.
func (c EventLogConfig) Validate() error {
	if c.MaxAge != "" && !maxAgeSyntax.MatchString(c.MaxAge) {
		return fmt.Errorf("invalid event log max age %q: want a number and a unit, Y, M, D, h, m or s (e.g. 7D)", c.MaxAge)
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("invalid event log max bytes %d: want a positive number", c.MaxBytes)
	}
	return nil
}

// EventLogQueue names the event log of exchange: "{exchange}.log".
func EventLogQueue(exchange string) string {
	return cmp.Or(exchange, Topology{}.exchange()) + ".log"
}

// DeclareEventLog declares the exchange and its event log: a durable stream
// queue bound to "#", which keeps every event, with its properties and
// headers, until cfg's retention drops it. Any number of services may
// declare it with the same cfg; another cfg fails with 406 and closes ch.
func DeclareEventLog(ch *amqp091.Channel, exchange string, cfg EventLogConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	t := Topology{Exchange: exchange}
	if err := t.DeclareExchange(ch); err != nil {
		return err
	}
	queue := EventLogQueue(t.exchange())
	args := amqp091.Table{
		"x-queue-type":       "stream",
		"x-max-age":          cmp.Or(cfg.MaxAge, DefaultEventLogMaxAge),
		"x-max-length-bytes": cmp.Or(cfg.MaxBytes, DefaultEventLogMaxBytes),
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("cannot declare event log %q: %w", queue, err)
	}
	if err := ch.QueueBind(queue, "#", t.exchange(), false, nil); err != nil {
		return fmt.Errorf("cannot bind event log %q to %q: %w", queue, "#", err)
	}
	return nil
}
