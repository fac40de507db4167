// Package fireflies holds the payloads of the fireflies domain: a media file
// is uploaded for transcription (fireflies.transcript.upload), Fireflies
// delivers the transcript through its webhook (fireflies.transcript.ready),
// the RAG consumer ingests it (fireflies.transcript.processed), and any
// stage may fail (fireflies.transcript.failed).
//
// The types mirror the Python models of event_producers/events/domains/
// fireflies.py field for field (wire contract, section 6). Optional fields
// are pointers and encode as null, as Python writes them; defaulted fields
// are filled on decode when absent or null, and defaulted collections encode
// as [] or {} rather than null. The package is pure data: Register adds its
// types to a domains.Registry.
package fireflies
