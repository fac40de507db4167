// Package artifact holds the payloads of the artifact domain: an artifact
// (a transcript, code, a document) was created, updated or deleted, and an
// artifact's ingestion into the RAG store failed.
//
// The lifecycle event travels under a routing key filled from its payload,
// RoutingKeyTemplate "artifact.{action}": a Changed with Action
// ActionCreated goes out as "artifact.created". The registry resolves the
// template both ways: Registry.RoutingKeyFor fills it from a Go value, and
// Registry.LookupKey finds Changed from "artifact.created". Validate also
// checks that the payload's action agrees with the key it travels under.
//
// The types mirror event_producers/events/domains/artifact.py (wire
// contract, section 6).
package artifact
