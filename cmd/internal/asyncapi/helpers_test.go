package asyncapi_test

import (
	"testing"

	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// registry is the built-in catalogue plus a third-party domain, as a
// service that registers its own types holds it.
func registry(t *testing.T) *domains.Registry {
	t.Helper()
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := registerInvoice(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// Line is nested in a payload so that its schema has $defs.
type Line struct {
	Sku    string  `json:"sku"`
	Amount float64 `json:"amount"`
}

// Charge is a third-party command whose result is Paid.
type Charge struct {
	InvoiceID string `json:"invoice_id"`
	Lines     []Line `json:"lines"`
}

// Paid is a third-party fact.
type Paid struct {
	InvoiceID string  `json:"invoice_id"`
	Total     float64 `json:"total"`
	Note      *string `json:"note"`
}

func registerInvoice(r *domains.Registry) error {
	return domains.RegisterDomain(r, "billing/invoice",
		domains.Spec[Charge]{
			RoutingKey:  "billing.invoice.charge",
			Kind:        domains.Command,
			Result:      "billing.invoice.paid",
			Description: "Charge an invoice.",
			Example:     Charge{InvoiceID: "inv-1", Lines: []Line{{Sku: "a", Amount: 12}}},
		},
		domains.Spec[Paid]{
			RoutingKey:  "billing.invoice.paid",
			Description: "An invoice was paid.",
			Example:     Paid{InvoiceID: "inv-1", Total: 12},
		},
	)
}
