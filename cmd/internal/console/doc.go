// Package console is the gateway's web console: static pages embedded in
// the binary (no CDN, no external fonts, no build step) and the JSON
// endpoints they need beyond the gateway's own.
//
// The gateway mounts Handler under /ui/ and Stream at GET /events/stream:
//
//	GET  /ui/                      the catalogue by domain (reads GET /schemas and GET /schemas/{name})
//	GET  /ui/events/{event_id}     the causal graph of an event, drawn as SVG
//	GET  /ui/dlq[?service=S]       a service's poison queue, paged
//	GET  /ui/api/info              {service, mutations}: what the pages may offer
//	GET  /ui/api/graph/{event_id}  the graph: nodes by level, edges, and whether it was cut off
//	GET  /ui/api/dlq               ?service=S&page=N: parked messages, PageSize a page
//	POST /ui/api/dlq/replay        {"service", "event_ids"} or {"service", "all": true}
//	POST /ui/api/dlq/purge         the same body
//	GET  /events/stream            ?pattern=P: Server-Sent Events, one per delivery
//
// Replay and purge go through reliability.PoisonQueue, the operations of
// `bb dlq`. They are refused with 403 unless Config.Mutations is set, which
// the gateway sets only when HTTP_TOKEN is: it listens on every interface by
// default, and the gateway already requires the token on every POST.
//
// The graph reads the correlation store level by level. A node's type,
// source app and time come from the metadata and time of its own recorded
// link (middleware.DefaultLinkMetadata), since envelopes are not kept; a
// node with no link of its own (the root of a chain) shows its id alone.
//
// The tail binds a temporary exclusive queue per client, deleted when the
// client disconnects or the server stops.
package console
