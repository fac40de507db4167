// Package topic matches routing keys against AMQP topic binding patterns,
// exactly as a RabbitMQ topic exchange does: words separated by ".", "*"
// for exactly one word, "#" for zero or more. The embedded broker routes
// with it, a service dispatches deliveries to its handlers with it, and
// `bb tail` and `bb dlq` filter with it, so that all of them agree with the
// broker on every key.
package topic
