package amqp_test

import (
	"errors"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/amqp"
)

func TestEventLogConfig_Validate(t *testing.T) {
	tests := []struct {
		cfg  amqp.EventLogConfig
		ok   bool
		name string
	}{
		{amqp.EventLogConfig{}, true, "defaults"},
		{amqp.EventLogConfig{MaxAge: "7D", MaxBytes: 1 << 30}, true, "days"},
		{amqp.EventLogConfig{MaxAge: "12h"}, true, "hours"},
		{amqp.EventLogConfig{MaxAge: "7d"}, false, "lower-case day"},
		{amqp.EventLogConfig{MaxAge: "D"}, false, "no number"},
		{amqp.EventLogConfig{MaxAge: "1 week"}, false, "words"},
		{amqp.EventLogConfig{MaxBytes: -1}, false, "negative size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
			}
		})
	}
}

func TestDeclareEventLog_twiceKeepsEveryEvent(t *testing.T) {
	r := newRabbit(t)
	conn := r.raw()
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := amqp.EventLogQueue(r.exchange)
	r.queue("log") // deleted at the end
	cfg := amqp.EventLogConfig{MaxAge: "1h", MaxBytes: 10_000_000}
	for i := range 2 {
		if err := amqp.DeclareEventLog(ch, r.exchange, cfg); err != nil {
			t.Fatalf("declaration %d: %v", i+1, err)
		}
	}

	keys := []string{"a.b", "c.d.e", "f"}
	for _, k := range keys {
		err := ch.Publish(r.exchange, k, false, false, amqp091.Publishing{
			Body: []byte(`{"k":"` + k + `"}`), MessageId: k, Headers: amqp091.Table{"x-test": k},
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, amqp091.Table{"x-stream-offset": "first"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		select {
		case d := <-deliveries:
			if d.RoutingKey != k || d.MessageId != k || d.Headers["x-test"] != k || string(d.Body) != `{"k":"`+k+`"}` {
				t.Errorf("got key %q id %q headers %v body %s, want all of %q", d.RoutingKey, d.MessageId, d.Headers, d.Body, k)
			}
			_ = d.Ack(false)
		case <-time.After(10 * time.Second):
			t.Fatalf("event %q not in the log", k)
		}
	}
	_ = ch.Close()

	// Other retention is refused rather than silently ignored.
	ch2, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	err = amqp.DeclareEventLog(ch2, r.exchange, amqp.EventLogConfig{MaxAge: "2h", MaxBytes: 10_000_000})
	var amqpErr *amqp091.Error
	if !errors.As(err, &amqpErr) || amqpErr.Code != amqp091.PreconditionFailed {
		t.Errorf("redeclaration with another max age: got %v, want 406 PRECONDITION_FAILED", err)
	}
}
