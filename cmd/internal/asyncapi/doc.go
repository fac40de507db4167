// Package asyncapi describes a Bloodbank bus as an AsyncAPI 3.0.0 document,
// generated from the event catalogue (a *domains.Registry) that a service
// holds, so that the document lists exactly the types that service knows:
// the built-in domains and any third-party domain registered next to them.
// `bb asyncapi` prints it; the HTTP gateway serves it at GET /asyncapi.json.
//
// # How the bus maps onto AsyncAPI
//
// Every Bloodbank event travels on one durable topic exchange (EXCHANGE_NAME,
// default bloodbank.events.v1) under a routing key equal to its event_type
// (wire-contract section 1). The document says so with:
//
//	servers      one AMQP 0-9-1 server: the host of RABBIT_URL, credentials
//	             removed (named "localhost" when no URL is given)
//	channels     one per registered routing key; its address is the key, and
//	             its amqp binding is {is: routingKey, exchange: {the topic
//	             exchange}}. A template key such as artifact.{action} keeps
//	             its placeholder in the address and declares it as a channel
//	             parameter whose value is read from the payload field
//	             ($message.payload#/payload/action)
//	messages     one per channel; the payload is the v1 envelope (component
//	             schema Envelope) whose "payload" member is narrowed to the
//	             event type's JSON Schema, and the example is a whole envelope
//	             around the type's registered example
//	operations   one per channel. A fact is "send" (services publish it,
//	             x-bloodbank-kind: fact); a command is "receive" (a command
//	             processor consumes and executes it, x-bloodbank-kind: command,
//	             title "Command: <key>"), with a reply on the channel of its
//	             result routing key when that key is registered too
//	components   the envelope schemas and each payload schema, named by the
//	             payload's Go type ("fireflies.TranscriptReady"); the payload
//	             schemas' $defs become components of their own, prefixed with
//	             that name, because a $ref inside an AsyncAPI document resolves
//	             against the whole document
//
// Channel, message and operation ids are the routing key with every character
// outside [A-Za-z0-9._-] replaced by "_", so "artifact.{action}" is the
// channel "artifact._action_". They are stable as long as the routing keys
// are, which the wire contract already requires.
//
// The document is deterministic: the same registry and Options give the same
// bytes, so it can be committed and diffed.
package asyncapi
