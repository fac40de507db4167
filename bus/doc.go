// Package bus is the bottom of Bloodbank for Go: the v1 envelope, how it
// travels, and the transports it travels on.
//
// # Envelope and message
//
// An Envelope is a Bloodbank v1 event exactly as wire-contract section 3
// writes it (MarshalJSON, DecodeEnvelope). Inside a process an event is a
// Watermill *message.Message: UUID is the event id, Payload the payload
// JSON, and every other envelope field lives in Metadata under the exported
// Meta* keys (NewMessage, EnvelopeFromMessage). Middleware in any Watermill
// router reads those keys; nothing above the codec knows the wire format.
//
// # The wire
//
// Codec is a watermill-amqp Marshaler: a message goes out as the whole
// envelope in the AMQP body (persistent, application/json, utf-8,
// message_id = event id) and comes back as a message. It never returns an
// error: a body that is not an envelope becomes a message marked
// MetaMalformed, with the original body as payload, for the poison queue.
//
// # Topology and transports
//
// One durable topic exchange (DefaultExchange), declared with the Python
// services' flags, and one durable queue per service, ServiceQueueName,
// bound once per routing-key pattern (Pattern: "*" one word, "#" zero or
// more). AMQPPublisher publishes with confirms, pipelined, reporting
// unroutable events; AMQPSubscriber runs N workers on one channel and
// declares its topology again after a reconnect. Embedded is an in-process
// broker with the same routing and the same consumer core, for the embedded
// default and for tests; both pass Watermill's universal Pub/Sub suite.
//
// # Services
//
// Bus opens the transport the settings ask for (Config, LoadConfig: RabbitMQ
// when RABBIT_URL is set, Embedded otherwise) and publishes envelopes. A
// Service is a Watermill router whose handlers share the service queue;
// Handle registers a typed handler for a pattern. Each delivery goes to
// every handler whose pattern matches and is acked once all of them acked
// it; Run drains on shutdown. Events a handler publishes with its context
// carry correlation_ids = [the event it handles] (WithCause).
//
// DeterministicID gives the uuid5 ids the Python services compute, so a
// redelivered cause yields the same child ids.
package bus
