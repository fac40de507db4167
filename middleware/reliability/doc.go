// Package reliability gives a bus.Service the queues behind its
// reliability middleware, and operators the means to inspect them.
//
// Use installs the middleware of package middleware on a service, outermost
// first: Poison, Dedup (with a DedupStore) and Retry. It declares the
// service's poison queue "{service queue}.poison" and its delay queues
// "{service queue}.retry.{1s,10s,1m}", durable queues with a message TTL
// that dead-letter back to the service queue, so that a retry waits
// without pinning a consumer and without a broker plugin (DelayQueues is
// the middleware.Redeliverer that sends to them).
//
// PoisonQueue lists, shows, replays and purges what was parked, for
// `bb dlq`. Reading is non-destructive; a replay sends the producer's body,
// byte for byte and with its event id, back to the handler that failed.
// The queue names are part of the contract: renaming them strands what
// they hold.
package reliability
