// Package transport holds what the two transports of a Bloodbank bus, the
// AMQP one (package amqp) and the in-process one (package embedded), share:
// how one queue is consumed by many Watermill subscriptions.
//
// A Bloodbank service has one queue and many handlers, each bound to a
// routing-key pattern. A Watermill router subscribes once per handler, so
// Subscriber keeps one consumer per queue and hands each delivery to every
// subscription whose pattern matches its routing key. The delivery is acked
// when every copy was acked and requeued when any was nacked; a redelivery
// addressed to one handler (envelope.MetaTargetHandler) goes to that
// handler alone. Close stops taking deliveries, lets in-flight handlers
// finish and ack up to SubscriberConfig.DrainTimeout, and requeues what is
// left: watermill-amqp's own subscriber nacks in-flight work on close.
//
// A transport supplies a Source per queue; because everything above the
// Source is this package's, the embedded broker behaves as RabbitMQ does by
// construction.
package transport
