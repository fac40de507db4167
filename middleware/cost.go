package middleware

import (
	"cmp"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
)

// MetaRoot is the metadata key (and AMQP header) naming the root event of
// a message's chain, x-bb-root (envelope.MetaRoot, which the runaway guard
// and the publishers set); without it the root is found in Redis.
const MetaRoot = envelope.MetaRoot

// costReporters are the routing keys whose payloads report tokens_used and
// duration_ms (wire contract, section 6). theboard's events carry
// tokens_used too, but for a meeting the responses already count.
var costReporters = map[string]bool{"agent.thread.response": true, "llm.response": true}

// reportedCost is the part of a response payload DefaultLinkCost reads.
type reportedCost struct {
	TokensUsed *int64 `json:"tokens_used"`
	DurationMS *int64 `json:"duration_ms"`
}

// lenient reads what Python's json.loads reads: a repeated key's last
// value wins, and invalid UTF-8 in a field nobody reads here is no reason
// to lose the cost.
var lenient = json.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// DefaultLinkCost is the cost an agent.thread.response or llm.response
// reports in tokens_used and duration_ms, charged to its source.app and to
// the root in MetaRoot (else Record finds it): nil for other events, or
// when the payload reports neither number.
func DefaultLinkCost(p LinkMetadataParams) *correlation.Cost {
	if !costReporters[cmp.Or(envelope.EventType(p.Message), p.Topic)] {
		return nil
	}
	var r reportedCost
	if err := json.Unmarshal(p.Message.Payload, &r, lenient); err != nil || r.TokensUsed == nil && r.DurationMS == nil {
		return nil
	}
	c := &correlation.Cost{Agent: p.Message.Metadata.Get(envelope.MetaSourceApp)}
	if r.TokensUsed != nil {
		c.TokensUsed = *r.TokensUsed
	}
	if r.DurationMS != nil {
		c.DurationMS = *r.DurationMS
	}
	if root, err := uuid.Parse(p.Message.Metadata.Get(MetaRoot)); err == nil {
		c.Root = root
	}
	return c
}
