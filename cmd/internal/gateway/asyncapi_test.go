package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/domains"
)

// Refund is a third-party payload the test registers in the gateway's
// catalogue.
type Refund struct {
	InvoiceID string `json:"invoice_id"`
}

func TestAsyncAPI_describesTheServicesCatalogue(t *testing.T) {
	f := newFixture(t, func(c *gateway.Config, _ *gateway.Deps) {
		c.ExchangeName = "test.asyncapi"
		c.BrokerURL = "amqp://bb:s3cret@rabbit.internal:5672/"
	})
	err := domains.RegisterDomain(f.events, "billing", domains.Spec[Refund]{
		RoutingKey: "billing.refund.issued", Description: "A refund was issued.", Example: Refund{InvoiceID: "inv-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := f.do(get("/asyncapi.json"))
	m := answer(t, rec, http.StatusOK)
	if m["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi = %v, want 3.0.0", m["asyncapi"])
	}
	channels := m["channels"].(map[string]any)
	if want := len(f.events.Events(domains.Filter{})); len(channels) != want {
		t.Errorf("%d channels, want one per registered type (%d)", len(channels), want)
	}
	refund, ok := channels["billing.refund.issued"].(map[string]any)
	if !ok {
		t.Fatalf("the third-party type registered in the service is missing; channels: %v", keys(channels))
	}
	exchange := refund["bindings"].(map[string]any)["amqp"].(map[string]any)["exchange"].(map[string]any)
	if exchange["name"] != "test.asyncapi" || exchange["type"] != "topic" {
		t.Errorf("exchange = %v, want the topic exchange test.asyncapi", exchange)
	}
	if _, ok := m["servers"].(map[string]any)["rabbit.internal"]; !ok {
		t.Errorf("servers = %v, want rabbit.internal", m["servers"])
	}
	if strings.Contains(rec.Body.String(), "s3cret") {
		t.Error("the document holds the broker's password")
	}
	if got := m["operations"].(map[string]any)["agent.thread.prompt"].(map[string]any)["x-bloodbank-kind"]; got != "command" {
		t.Errorf("agent.thread.prompt kind = %v, want command", got)
	}
	if v, _ := metricValue(t, f.metrics, "bloodbank_http_requests_total", map[string]string{"route": "GET /asyncapi.json", "code": "200"}); v != 1 {
		t.Errorf("requests counted under the route: %v, want 1", v)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
