// Package correlation stores the causal graph of Bloodbank events: which
// events caused which. An event's envelope names its causes in
// correlation_ids; recording those links lets anyone later ask where an
// event came from (its ancestors) and what it led to (its descendants).
//
// # One graph for Go and Python
//
// A Go service sharing Redis with the Python services reads and writes the
// very same keys (wire-contract section 4). For "child was caused by parents":
//
//	bloodbank:correlation:forward:{child}    string  {"parent_event_ids": ["<uuid>", ...],
//	                                                  "created_at": "<ISO-8601>",
//	                                                  "metadata": {...}}      TTL 30 days
//	bloodbank:correlation:reverse:{parent}   set     child ids               TTL 30 days, refreshed on every add
//
// Ids are lowercase hyphenated UUIDs. Go writes the forward value compactly,
// keys in Python's order, created_at in UTC with a "Z", metadata always an
// object; it reads what Python writes, compact (orjson) or spaced
// (json.dumps), any ISO-8601 created_at (naive means UTC). The prefix and TTL (RedisConfig) default to Python's.
//
// # The pieces
//
// Store is the graph and Writer its Record half. RedisStore implements it on
// a go-redis UniversalClient (NewUniversalClient builds one from Settings);
// EmbeddedStore runs the same code on an in-process miniredis, the default
// without Redis. Recorder is the Writer the bus calls, which never fails or
// stalls a publish. correlationtest holds the contract suite.
//
// Record writes any number of links in one pipelined round trip (go-redis
// splits it by Cluster node); Ancestors, Descendants and Debug make one
// round trip per level of the graph; the other reads one command each.
// Writes are a pipeline, not the Python tracker's MULTI/EXEC, because a
// transaction cannot span Cluster slots: every command is idempotent, so
// writing a link again repairs a half-written one, and readers tolerate a
// child whose forward key is gone.
//
// # Cost along the chain
//
// A link may carry the Cost its child reported (tokens_used, duration_ms).
// Record adds it to the hash {prefix}cost:{root} beside the links, in the
// same pipeline: totals and a share per agent (source.app), each event
// counted once however often its link is written, the hash kept as long as
// the links. The root comes with the Cost (the x-bb-root header) or is
// found by RootOf, walking first parents up to an event without a link, as
// a Python root has none. Every command touches one key, so the layout
// works on Redis Cluster, and a read is one HGETALL (Cost) or one HGET
// (RootTokens). The Python tracker's keys are unchanged.
//
// # Order of results
//
// Parents are in recorded order (the envelope's correlation_ids); Children
// are sorted by id. Ancestors and Descendants are breadth first: nearest
// level first, ids sorted within a level, each event once at its smallest
// distance; the starting event is never included, which also ends cycles
// (a → b → a). maxDepth counts levels: 1 gives the parents (or children),
// <= 0 means 100, the Python default.
//
// The Python tracker returns the same events but its chain is depth-first
// post-order, includes the starting event when it has links, and its
// max_depth stops one level earlier (max_depth 1 returns nothing);
// CorrelationChain reproduces that order.
//
// Metadata (and Dump.Metadata) is that of the event's own link: nil (JSON
// null) when none was recorded, as Python returns None; {} when the link
// carried none. Its numbers are json.Number, so Python's integers come back
// exactly.
package correlation
