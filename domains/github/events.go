package github

import (
	"github.com/33god/bloodbank-go/domains"
)

// Domain is the domain name, as Python's registry lists it.
const Domain = "github"

// RoutingKeyPRCreated is the routing key of PRCreated, part of the wire contract.
const RoutingKeyPRCreated = "github.pr.created"

// PRCreated reports a new pull request, whose details wait in a cache under
// CacheKey. Python: GitHubPRCreatedPayload.
type PRCreated struct {
	CacheKey  string    `json:"cache_key" jsonschema_description:"Key of the PR data in the cache, e.g. trinote|423."`
	CacheType CacheType `json:"cache_type" default:"redis"`
}

// CacheType is where the PR details are stored.
type CacheType string

// The cache types the contract allows.
const (
	CacheRedis  CacheType = "redis"
	CacheMemory CacheType = "memory"
	CacheFile   CacheType = "file"
)

// EnumValues makes the schema, and so Validate, reject any other cache type.
func (CacheType) EnumValues() []string {
	return []string{string(CacheRedis), string(CacheMemory), string(CacheFile)}
}

var _ domains.Enum = CacheType("")
