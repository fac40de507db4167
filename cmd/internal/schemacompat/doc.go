// Package schemacompat decides whether a new set of event schemas can
// replace an old one without breaking a consumer, and keeps the snapshots
// the decision is made against.
//
// # The rule: BACKWARD compatibility
//
// A new schema is backward compatible with an old one when a consumer built
// on the new schema reads every message that was valid under the old one.
// This is Confluent's schema registry's BACKWARD mode for JSON Schema: the
// new schema must accept at least what the old one accepted. Every check
// below follows from that one sentence, asked of each place in the
// document:
//
//   - A routing key that disappears breaks: its messages are still on the
//     bus, in queues and in the event log, and nothing can decode them.
//   - A type the new schema no longer accepts breaks: string where integer
//     was, integer where number was (narrowing), one type gone from a
//     union, null gone from anyOf [X, null] (a field made non-nullable).
//     Widening integer to number is fine: every integer is a number.
//   - An enum value removed breaks; a value added does not. An enum (or
//     const) where there was none is a narrowed value set.
//   - A field made required breaks, whether it existed as optional or is
//     new, unless the new required field has a default the consumer fills
//     in. A field made optional is fine.
//   - Any new restriction breaks: additionalProperties turned false (or an
//     old field dropped from a closed object), a format or pattern added or
//     changed, a bound (minimum, maxLength, minItems, …) added or tightened.
//
// Additive changes pass: a new optional field, a new routing key, a wider
// enum, a field made optional or nullable, a relaxed bound. Confluent is
// stricter in one case: it rejects a property added to an open content
// model, since an old message may have carried that name with another
// type. The catalogue's payloads are generated from Go structs, so no
// producer sends unknown fields on purpose, and this package lets a new
// optional field through, as the bus's contract intends.
//
// # How the walk works
//
// Compare walks the old and the new document side by side from the root,
// which paths name "payload", as the validator's problems do. Object
// properties extend the path with ".name", array items with "[]" and
// additionalProperties (the values of a map) with ".*". Local references
// ("#/$defs/Name", or any JSON Pointer into the same document) are
// resolved before a node is compared; a pair of references already under
// comparison is not entered again, so recursive types terminate.
// anyOf and oneOf are read as a union: each old branch must be accepted by
// some new branch of the same type. Keywords that do not decide validity
// (title, description, examples, default) are ignored, except default
// where a field becomes required.
//
// # Snapshots
//
// A snapshot is one JSON object keyed by routing key (a template such as
// artifact.{action} stays a template), each value that type's JSON Schema
// as domains.EventType.Schema returns it. Write builds one from a
// registry, with keys sorted and indented, so the same catalogue gives the
// same bytes; Check compares a snapshot with a newer one and returns the
// breaking changes, sorted by routing key and then by place in the walk.
package schemacompat
