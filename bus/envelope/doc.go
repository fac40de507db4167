// Package envelope is the bottom of Bloodbank for Go: the v1 event as it
// travels, and everything that must agree byte for byte with the Python
// services.
//
// # The event
//
// An Envelope is a Bloodbank v1 event as wire-contract section 3 writes it.
// New builds one; MarshalJSON writes it as the compact JSON body, Decode
// reads any body the Python writers produce. Time is the timestamp type
// payloads use, and DeterministicID the uuid5 ids Python computes, so a
// redelivered cause yields the same child ids.
//
// # JSON
//
// All of it goes through github.com/go-json-experiment/json
// (encoding/json/v2), from wire structs that mirror wire-contract section 3,
// with the options in json.go that make it write what the Python services
// and encoding/json write. Members of a body that the package does not know
// are kept and written back after the known ones, so a relay passes on what
// a newer writer added. Payloads go through MarshalPayload and
// UnmarshalPayload, which apply the `default` struct tags of a payload type.
//
// # The event inside a process
//
// Inside a process an event is a Watermill *message.Message: UUID is the
// event id, Payload the payload JSON, and every other envelope field lives
// in Metadata under the exported Meta* keys (NewMessage, FromMessage).
// Middleware in any Watermill router reads those keys; nothing above the
// codec knows the wire format.
//
// # The wire
//
// Codec is a watermill-amqp Marshaler: a message goes out as the whole
// envelope in the AMQP body (persistent, application/json, utf-8,
// message_id = event id) and comes back as a message; a body that is not an
// envelope becomes a message marked MetaMalformed, with the original body
// as payload, for the poison queue.
//
// # Failures and causes
//
// A PermanentError marks a failure that retrying cannot fix; the
// reliability middleware parks such messages at once. WithCause puts the
// event a handler handles into its context, so that what it publishes
// carries correlation_ids = [that event].
package envelope
