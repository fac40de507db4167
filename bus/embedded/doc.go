// Package embedded is an in-process broker with the semantics of one
// RabbitMQ topic exchange: named queues, bindings with "*" and "#"
// patterns, each message routed once to every queue with a matching
// binding, competing consumers, and messages kept until acked. It is what a
// service runs on when no RABBIT_URL is set, and what unit tests run on.
// Its publisher runs every message through the wire codec, so subscribers
// receive exactly what they would from RabbitMQ. Nothing survives the
// process.
package embedded
