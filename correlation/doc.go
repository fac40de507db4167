// Package correlation stores the causal graph of Bloodbank events: which
// events caused which. An event's envelope names its causes in
// correlation_ids; recording those links lets anyone later ask where an
// event came from (its ancestors) and what it led to (its descendants).
//
// # One graph for Go and Python
//
// The Python services keep this graph in Redis, and a Go service sharing
// that Redis must read and write the very same keys (wire-contract section
// 4). For a link "child was caused by parents":
//
//	bloodbank:correlation:forward:{child}    string  {"parent_event_ids": ["<uuid>", ...],
//	                                                  "created_at": "<ISO-8601>",
//	                                                  "metadata": {...}}      TTL 30 days
//	bloodbank:correlation:reverse:{parent}   set     child ids               TTL 30 days, refreshed on every add
//
// Ids are lowercase hyphenated UUID strings. Go writes the forward value
// compactly with keys in Python's order and created_at in UTC with a "Z";
// it reads what Python writes, compact (orjson) or spaced (json.dumps), with
// any ISO-8601 created_at, naive meaning UTC. Metadata is always an object
// when written ({} when there is none). The prefix and TTL are settings
// (RedisConfig), defaulting to Python's; CORRELATION_TTL_DAYS converts with
// TTLFromDays.
//
// # The pieces
//
//   - Store is the graph: Record writes links, Parents, Children,
//     Ancestors, Descendants, Metadata, Lookup and Debug read it.
//   - RedisStore is the Store on Redis through a go-redis UniversalClient,
//     so standalone Redis, Sentinel and Cluster are a matter of
//     configuration. NewUniversalClient builds that client from the
//     REDIS_* settings (Settings), REDIS_URL through go-redis's own URL
//     parsers.
//   - EmbeddedStore is the same RedisStore on an in-process miniredis: the
//     default when no Redis is configured, and what unit tests use. Its
//     semantics are production's because its code is.
//   - Recorder is what the bus calls: a Writer that never fails and never
//     stalls a publish or a handler.
//   - correlationtest holds the contract suite every Store passes.
//
// # Costs
//
// Record writes any number of links in one round trip (a pipeline: per
// link a SET with TTL, per distinct parent one SADD and one EXPIRE).
// Ancestors and Descendants make one round trip per level of the graph,
// fetching the whole frontier in one pipeline; Debug walks both directions
// in the same round trips. Parents, Children, Metadata and Lookup are one
// command each. With Cluster a pipeline spans slots; go-redis splits it by
// node, still one round trip per node.
//
// # Order of results
//
// Parents are in the order they were recorded (the order of the envelope's
// correlation_ids). Children are sorted by id. Ancestors and Descendants are
// breadth first: nearest level first, ids sorted within a level, each event
// once at its smallest distance; the starting event is never included,
// which is also what ends cycles (a → b → a). maxDepth counts levels:
// 1 gives the parents (or children), and <= 0 means 100, the Python
// default.
//
// The Python tracker returns the same sets of events but differs in two
// ways a reader of both should know: its chain is in depth-first post-order
// and includes the starting event when it has links, and its max_depth
// stops one level earlier (max_depth 1 returns nothing). Go's order is the
// one documented here, the same on every run.
//
// Metadata (and Dump.Metadata) is the metadata recorded with the event's
// own link to its parents: nil (JSON null) when no link was recorded, as
// Python's get_correlation_metadata returns None; an empty map ({}) when the
// link carried none. Numbers in it are json.Number, so integers written by
// Python come back exactly.
//
// # Guarantees for the bus
//
// Correlation is optional and must never block or fail a publish, the rule
// the Python publisher follows with its 1 s bound. A Recorder's Record
// returns no error: a link it cannot write within Timeout (default 1 s) is
// counted (Failed) and logged as a warning, at most one line per
// WarnInterval. With Batching, Record does not wait for Redis at all: links
// are queued (bounded by QueueSize; overflow counts as failed) and written
// many per round trip. A RedisStore used directly bounds Record with
// WriteTimeout and returns the error; it does not connect on construction,
// so a service starts while Redis is down and recording resumes when Redis
// is back.
//
// Writes are a pipeline, not the MULTI/EXEC transaction the Python tracker
// uses, because a transaction cannot span Cluster slots. Every command is
// idempotent, so a link written halfway is repaired by writing it again,
// and readers tolerate a child listed in a set whose forward key is gone
// (expired or never written).
package correlation
