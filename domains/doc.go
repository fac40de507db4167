// Package domains is the Bloodbank event catalogue: it maps a routing key to
// its payload type, records whether that payload is a command or a fact,
// generates the payload's JSON Schema, keeps an example, and validates
// payloads against the schema. The payload types live in one sub-package
// per domain (fireflies, agent/thread, github, llm, ...), and package
// catalog assembles them. Domain packages are pure data: what a command
// does belongs to package cqrs, so here a command only records the routing
// key of the event its execution publishes.
//
// # Registering a domain
//
// A domain package, built in or third party, declares payload structs and
// routing-key constants, and exports a Register function:
//
//	package invoice
//
//	const RoutingKeyPaid = "billing.invoice.paid"
//
//	type Paid struct {
//		InvoiceID uuid.UUID     `json:"invoice_id"`
//		Amount    float64       `json:"amount"`
//		PaidAt    envelope.Time `json:"paid_at"`
//		Note      *string       `json:"note"`              // optional: null when absent
//		Tags      []string      `json:"tags" default:"[]"` // defaulted
//	}
//
//	func Register(r *domains.Registry) error {
//		return domains.RegisterDomain(r, "billing/invoice",
//			domains.Spec[Paid]{
//				RoutingKey:  RoutingKeyPaid,
//				Description: "An invoice was paid.",
//				Example:     Paid{InvoiceID: uuid.New(), Amount: 120, PaidAt: envelope.Now()},
//			},
//		)
//	}
//
// and the service registers it next to the built-in domains:
//
//	reg, err := catalog.New()
//	...
//	err = invoice.Register(reg)
//
// # How a Go type becomes a schema
//
// The schema (JSON Schema draft 2020-12, generated with invopop/jsonschema)
// follows the Python models of the wire contract rather than encoding/json:
//
//	Go field                                   schema
//	T (string, int, float64, bool, struct, []T) required
//	*T                                         optional, anyOf [T, null]
//	map[string]any, any (no default)           optional, anyOf [object, null]
//	`default:"…"` tag                          optional, "default": …, not nullable
//	omitempty / omitzero                       optional
//	uuid.UUID                                  string, format uuid
//	envelope.Time, time.Time                   string, format date-time
//	a typed string implementing Enum           string, enum of its values
//
// The `default` tag holds the literal text for a string field, JSON for any
// other ("[]", "{}", "true", "0"), and DefaultNow for the time of decoding.
// The codec applies it too: an absent or null field decodes to its default,
// and a nil collection or zero "now" time is encoded as its default, because
// Python writes null for an absent optional and rejects null for a defaulted
// field (so optional fields carry no omitempty). Unknown properties are
// allowed, since Python ignores them.
//
// # Validation and the unknown-type policy
//
// Validation is stricter than decoding in one place: a defaulted field sent
// as null is reported, because the Python consumers would reject it, while
// Decode applies the default. The registry does not decide what an unknown
// event type means; the caller does:
//
//	switch err := reg.Validate(key, payload); {
//	case errors.Is(err, domains.ErrUnknownEventType):
//		// strict (bb publish's default): reject; permissive: pass it through,
//		// as a Python producer may be ahead of this service's catalogue.
//	case errors.Is(err, domains.ErrInvalidPayload):
//		// a *ValidationError: retrying will not help; poison it.
//	}
//
// # Why a purpose-built validator
//
// The validator is compiled at registration from the document
// EventType.Schema returns, so `bb show` prints what is enforced; Register
// refuses any keyword the generator does not emit. It reads the payload
// once with a jsontext.Decoder, checking syntax and schema together, and
// locates each problem by JSON Pointer.
//
// A differential fuzz test in domains/catalog holds it to the verdict of
// santhosh-tekuri/jsonschema/v6 on every registered schema, except where it
// follows the bus's readers rather than JSON Schema: a date-time is what
// envelope.ParseTimestamp reads, a UUID what uuid.Parse reads, an integer
// what a Go int decodes (not 2.0 or 1e3), and a name repeated in an object
// is checked at each occurrence, as encoding/json decodes each.
package domains
