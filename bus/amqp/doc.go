// Package amqp is the RabbitMQ transport of a Bloodbank bus, written on
// amqp091-go behind Watermill's Publisher and Subscriber interfaces.
//
// # Topology
//
// One durable topic exchange (envelope.DefaultExchange), declared with the
// Python services' flags, and one durable queue per service, bound once per
// routing-key pattern its handlers declare. Topology declares them;
// TopologyBuilder gives the same bindings to a plain watermill-amqp
// subscriber, whose own default binds a queue to its own name.
//
// # Publishing
//
// Publisher publishes with publisher confirms and mandatory set: Publish
// returns once the broker confirmed every message, and an event no queue
// is bound to is reported (logged and counted, or ErrUnroutable). Many
// publishes are in flight on each channel at once, so one goroutine can
// publish at the broker's pace (PublishAsync).
//
// # Consuming
//
// Subscriber consumes a queue with Consumers workers on one channel with
// QoS Prefetch, acks a delivery only after its handlers acked it, drains on
// Close, and after a broker restart declares its topology again and resumes
// by itself. Connection redials with backoff; its URL's credentials never
// appear in logs or errors (RedactURL).
//
// # Clusters
//
// The URL may list a cluster's nodes, separated by commas (SplitURLs):
// Connection takes the first that answers and, when it loses a node, goes
// on to the next, round-robin. Publishes pending on the lost connection
// fail (transport.ErrNotConfirmed) rather than vanish. With QueueQuorum
// the service, delay and poison queues are quorum queues; a service queue
// dead-letters to its poison queue what was returned QuorumDeliveryLimit
// times.
package amqp
