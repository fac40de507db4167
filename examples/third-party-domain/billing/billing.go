// Package billing is a third-party Bloodbank domain: payload types that the
// bloodbank-go module has never heard of, registered into a catalogue with
// nothing but its public API. It uses no unexported identifier of
// bloodbank-go, so it could live in any module, next to the service that
// owns the events.
//
// A domain package is pure data: routing-key constants next to payload
// structs, snake_case JSON tags, and a Register function. Behaviour (what
// a service does with an event) lives in the services.
package billing

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

// Domain is the domain's name in listings (`bb list-events`).
const Domain = "billing/invoice"

// RoutingKeyInvoicePaid is the routing key of InvoicePaid. Routing keys are
// part of the wire contract: every producer and consumer binds to these
// exact strings, so never rename one.
const RoutingKeyInvoicePaid = "billing.invoice.paid"

// InvoicePaid reports that an invoice was paid.
//
// How the Go fields become the JSON Schema the catalogue enforces: a plain
// field is required, a pointer is optional (JSON null when absent), a
// `default` tag makes a field optional with that default, uuid.UUID and
// envelope.Time get the uuid and date-time formats, and an Enum type lists its
// values.
type InvoicePaid struct {
	InvoiceID uuid.UUID     `json:"invoice_id"`
	Amount    float64       `json:"amount" jsonschema_description:"In the currency's major unit, e.g. 12.5 EUR."`
	Currency  Currency      `json:"currency"`
	PaidAt    envelope.Time `json:"paid_at"`
	Note      *string       `json:"note"`
	Tags      []string      `json:"tags" default:"[]"`
}

// MarshalJSON writes absent tags as [], since a Python consumer built from
// the same schema reads null there as an error. The `default` tag only
// documents the default; the type applies it.
func (p InvoicePaid) MarshalJSON() ([]byte, error) {
	type plain InvoicePaid
	if p.Tags == nil {
		p.Tags = []string{}
	}
	return json.Marshal(plain(p))
}

// UnmarshalJSON reads absent or null tags as empty.
func (p *InvoicePaid) UnmarshalJSON(b []byte) error {
	type plain InvoicePaid
	var v plain
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	*p = InvoicePaid(v)
	return nil
}

// Currency is an ISO 4217 code this ledger accepts.
type Currency string

// The currencies the ledger accepts.
const (
	EUR Currency = "EUR"
	USD Currency = "USD"
	GBP Currency = "GBP"
)

// EnumValues makes the schema, and so validation, reject any other code.
func (Currency) EnumValues() []string { return []string{string(EUR), string(USD), string(GBP)} }

// Compile-time checks that the types do what the catalogue relies on.
var (
	_ domains.Enum     = Currency("")
	_ json.Marshaler   = InvoicePaid{}
	_ json.Unmarshaler = (*InvoicePaid)(nil)
)

// Register adds the domain to r. A service calls it on the registry
// catalog.New returns, next to the built-in domains. Register checks the
// example against the generated schema, so the two cannot drift apart.
func Register(r *domains.Registry) error {
	err := domains.Register(r, domains.Spec[InvoicePaid]{
		RoutingKey:  RoutingKeyInvoicePaid,
		Domain:      Domain,
		Description: "An invoice was paid.",
		Example: InvoicePaid{
			InvoiceID: uuid.MustParse("5b0d1a4e-8c1f-4d7e-9a55-3f1e2c9b7a10"),
			Amount:    120,
			Currency:  EUR,
			PaidAt:    envelope.NewTime(time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC)),
			Tags:      []string{"subscription"},
		},
	})
	if err != nil {
		return fmt.Errorf("cannot register domain %s: %w", Domain, err)
	}
	return nil
}
