package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/examples/internal/extest"
)

// The demo's whole output: the valid invoice reaches the handler typed,
// the invalid one is rejected with every problem and its JSON path.
const wantOutput = `registered billing.invoice.paid as billing.InvoicePaid (domain billing/invoice, fact)
handled invoice 9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a: 49.90 EUR paid at 2026-01-29T10:00:00.000000Z, note "January subscription", tags []
rejected 31fcacfc-97ac-5ac9-82f5-fa7df8ce5048 (invalid):
  payload.invoice_id: expected a UUID, got "INV-2026-001"
  payload.amount: expected number, got string
  payload.currency: expected one of "EUR", "USD", "GBP", got "EURO"
  payload.paid_at: expected an ISO-8601 date-time, got "yesterday"
  payload.tags: expected array, got null
`

func TestRun_demoOnTheEmbeddedTransport(t *testing.T) {
	testDemo(t, extest.EmbeddedConfig(t))
}

func TestRun_demoOnRabbitMQ(t *testing.T) {
	cfg := extest.RabbitConfig(t, serviceName)
	testDemo(t, cfg)
	extest.WantNoServiceQueue(t, cfg, serviceName)
}

func testDemo(t *testing.T, cfg bus.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), extest.Timeout)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, cfg, extest.Logger(t), &out); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, &out)
	}
	if got := out.String(); got != wantOutput {
		t.Errorf("output:\n%s\nwant:\n%s", got, wantOutput)
	}
}
