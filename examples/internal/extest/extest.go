// Package extest runs the examples' programs in their tests: on the
// embedded transport, and on the real RabbitMQ when one is reachable, each
// test with an exchange of its own that is deleted, with the queues the
// program declared, when the test ends.
package extest

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/internal/testenv"
)

// Timeout bounds a whole demo run in a test; a demo takes milliseconds.
const Timeout = 30 * time.Second

// Logger discards what the programs log, except under go test -v, where it
// goes to the test log.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// EmbeddedConfig is the default settings, with no environment and no .env:
// the embedded in-process transport.
func EmbeddedConfig(t testing.TB) bus.Config {
	t.Helper()
	cfg, err := bus.LoadConfig(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// RabbitConfig is settings on the test RabbitMQ (the test is skipped
// without one, or fails under BB_REQUIRE_SERVICES=1) with an exchange of
// the test's own. When the test ends, the exchange and the queues of
// services are deleted.
func RabbitConfig(t testing.TB, services ...string) bus.Config {
	t.Helper()
	cfg := EmbeddedConfig(t)
	cfg.RabbitURL = testenv.RabbitURL(t)
	cfg.ExchangeName = "bb.test.examples." + nonWord.ReplaceAllString(strings.ToLower(t.Name()), "_") + "." + uuid.NewString()[:8]
	cfg.ConnectTimeout = 10 * time.Second
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := bus.Open(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Errorf("cannot clean up exchange %s: %v", cfg.ExchangeName, err)
			return
		}
		defer b.Close()
		err = b.WithChannel(ctx, func(ch *amqp091.Channel) error {
			for _, s := range services {
				if _, err := ch.QueueDelete(bus.ServiceQueueName(cfg.ExchangeName, s), false, false, false); err != nil {
					return err
				}
			}
			return ch.ExchangeDelete(cfg.ExchangeName, false, false)
		})
		if err != nil {
			t.Errorf("cannot clean up exchange %s: %v", cfg.ExchangeName, err)
		}
	})
	return cfg
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

// WantNoServiceQueue fails the test when the service's queue exists on the
// broker of cfg: a demo must leave nothing behind.
func WantNoServiceQueue(t testing.TB, cfg bus.Config, service string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	queue := bus.ServiceQueueName(cfg.ExchangeName, service)
	err = b.WithChannel(ctx, func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err
	})
	var amqpErr *amqp091.Error
	if !errors.As(err, &amqpErr) || amqpErr.Code != amqp091.NotFound {
		t.Errorf("queue %s is still on the broker after the demo (passive declare: %v)", queue, err)
	}
}
