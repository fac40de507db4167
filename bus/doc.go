// Package bus connects a Go service to a Bloodbank bus: it opens the
// transport the settings ask for, publishes envelopes with confirms, and
// runs services whose typed handlers share one queue.
//
// # The house
//
// The packages under bus, from the bottom up:
//
//	envelope     the v1 event, its wire codec, ids, timestamps, failure kinds
//	topic        RabbitMQ topic-pattern matching
//	transport    one queue consumed by many subscriptions, acked when all acked, drained on close
//	amqp         the RabbitMQ transport: connection, topology, confirmed publisher, subscriber
//	embedded     the in-process broker with the same routing, for development and tests
//	bus          Bus, Service, Handle (this package)
//
// Package middleware/reliability gives a Service its poison and delay
// queues, and operators their admin.
//
// # Bus and Service
//
// Open connects as Config says (LoadConfig reads the settings the Python
// services read, from the environment and .env); Bus.Publish returns once
// the broker confirmed. A Service is a Watermill router whose handlers
// share one queue; Handle registers a typed handler, and Run drains on
// shutdown.
package bus
