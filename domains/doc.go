// Package domains is the Bloodbank event catalogue: it owns the mapping
// from a routing key to its payload type, whether that payload is a command
// or a fact, the payload's JSON Schema and an example, and the validation of
// payloads against that schema. The payload types themselves live in one
// sub-package per domain (fireflies, agent/thread, agent/feedback, github,
// llm, artifact, theboard), and package catalog assembles them. The
// domain packages are pure data: what a command does when it executes
// belongs to the cqrs package, so here a command is only recorded as such,
// with the routing key of the event its execution publishes.
//
// # Registering a domain
//
// A domain package, built in or third party, declares its payload structs
// and routing-key constants, and exports a Register function that adds them
// to a Registry with nothing but this package's public API:
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
//			// ... one Spec per payload type of the domain
//		)
//	}
//
// and the service registers it next to the built-in domains:
//
//	reg, err := catalog.New()
//	...
//	err = invoice.Register(reg)
//
// RegisterDomain registers every spec it can and reports all that failed;
// a spec may name a Domain of its own. Register adds a single type.
// Registering the same routing key, Go type or name (alias) twice with
// a different type is an error wrapping ErrAlreadyRegistered. Registering
// the same type under the same key again is a no-op, so two packages may both
// register a domain they share. Register rejects (ErrInvalidSpec) an example
// that does not validate against the generated schema.
//
// # How a Go type becomes a schema
//
// The schema (JSON Schema draft 2020-12, generated with invopop/jsonschema)
// follows the Python models of the wire contract rather than encoding/json's
// habits:
//
//	Go field                                   schema
//	T (string, int, float64, bool, struct, []T) required
//	*T                                         optional, anyOf [T, null]
//	map[string]any, any (no default)           optional, anyOf [object, null]
//	`default:"…"` tag                          optional, "default": …, not nullable
//	omitempty / omitzero                       optional
//	uuid.UUID                                  string, format uuid
//	envelope.Time                              string, format date-time
//	a typed string implementing Enum           string, enum of its values
//
// The `default` tag holds the literal text for a string field, JSON for any
// other ("[]", "{}", "true", "0"), and DefaultNow ("now") for a date-time
// that defaults to the time of decoding. The tag documents the default in
// the schema and exempts the field from "required", and the same tag drives
// the codec, so no payload type writes JSON methods of its own: a payload is
// given its defaults when it is decoded (envelope.DecodePayload,
// domains.Decode: an absent or null field takes its default) and when it is
// encoded (a nil collection is written as [] or {}, a zero "now" time as the
// time of encoding), because Python writes null for an absent optional and
// rejects null for a defaulted field. Optional fields therefore carry no
// omitempty: Go writes null, as Python does. Unknown properties are allowed
// everywhere, since Python ignores them.
//
// # Validation and the unknown-type policy
//
// Registry.Validate(routingKey, payload) returns nil, a *ValidationError
// listing every problem with its path ("payload.sentences[3].ai_filters.
// sentiment: expected one of …"), or an error wrapping ErrUnknownEventType.
// Validation is stricter than decoding in one place: a defaulted field sent
// as null is reported, because the Python consumers would reject it, while
// Decode quietly applies the default.
//
// The registry does not decide what an unknown event type means; the caller
// does, by testing the error:
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
// The validator is compiled once per type at registration from the very
// schema document that EventType.Schema returns, so `bb show` prints what is
// enforced; it understands the keywords the generator emits (type, anyOf
// with null, $ref/$defs, properties, required, items, additionalProperties,
// enum, format uuid and date-time) and Register refuses a schema with any
// other. It reads the payload once with a jsontext.Decoder (the syntax layer
// of encoding/json/v2, set to accept exactly what encoding/json accepts),
// checking JSON syntax and the schema together without decoding into maps,
// and locates each problem with the decoder's own JSON Pointer. On a
// fireflies.transcript.ready payload with 200 sentences (86 kB,
// BenchmarkValidate_TranscriptReady200) it costs one allocation (parsing
// the date-time) and less than a tenth of the time that
// santhosh-tekuri/jsonschema/v6 takes on the same schema with 32,000
// allocations (BenchmarkValidate_TranscriptReady200_reference), whose
// nested error tree would also need flattening into paths.
//
// santhosh-tekuri/jsonschema/v6 stays the reference: a differential fuzz
// test in domains/catalog holds both to the same verdict on every
// registered schema. They differ only where the validator follows the
// readers of the bus rather than the letter of JSON Schema: a date-time is
// what envelope.ParseTimestamp reads (Z, +00:00 and naive forms, a space for
// the T, a date alone), which a strict RFC 3339 check rejects in part, and
// a UUID what uuid.Parse reads; an integer is what a Go int decodes (not
// 2.0 or 1e3, and within int64); a name written twice in an object is
// checked at each occurrence, as encoding/json decodes each.
package domains
