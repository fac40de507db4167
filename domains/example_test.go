package domains_test

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// A third-party domain, as a billing service would write it in its own
// module: payload types, routing-key constants and a Register function that
// uses only the public API of package domains.

const RoutingKeyInvoicePaid = "billing.invoice.paid"

type InvoicePaid struct {
	InvoiceID uuid.UUID     `json:"invoice_id"`
	Amount    float64       `json:"amount"`
	PaidAt    envelope.Time `json:"paid_at"`
	Note      *string       `json:"note"`
	Tags      []string      `json:"tags" default:"[]"`
}

func RegisterBilling(r *domains.Registry) error {
	return domains.Register(r, domains.Spec[InvoicePaid]{
		RoutingKey:  RoutingKeyInvoicePaid,
		Domain:      "billing/invoice",
		Aliases:     []string{"InvoicePaidPayload"},
		Description: "An invoice was paid.",
		Example: InvoicePaid{
			InvoiceID: uuid.MustParse("7d444840-9dc0-11d1-b245-5ffdce74fad2"),
			Amount:    120,
			PaidAt:    envelope.Now(),
			Tags:      []string{"card"},
		},
	})
}

// Example_thirdPartyDomain registers a service's own domain next to the
// built-in ones and validates payloads with the unknown-type policy the
// caller chooses.
func Example_thirdPartyDomain() {
	reg, err := catalog.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := RegisterBilling(reg); err != nil {
		fmt.Println(err)
		return
	}

	e, _ := reg.Lookup("InvoicePaidPayload")
	fmt.Println(e.RoutingKey(), e.Domain(), e.Kind())

	err = reg.Validate(RoutingKeyInvoicePaid, []byte(`{"invoice_id": "7d444840", "amount": "120", "note": null}`))
	fmt.Println(err)

	err = reg.Validate("billing.invoice.refunded", []byte(`{}`))
	if errors.Is(err, domains.ErrUnknownEventType) {
		fmt.Println("unknown type: reject it (strict) or pass it through (permissive)")
	}
	// Output:
	// billing.invoice.paid billing/invoice fact
	// payload.invoice_id: expected a UUID, got "7d444840"; payload.amount: expected number, got string; payload.paid_at: required
	// unknown type: reject it (strict) or pass it through (permissive)
}
