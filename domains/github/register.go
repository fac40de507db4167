package github

import "github.com/33god/bloodbank-go/domains"

// Register adds PRCreated to r under its routing key and its Python class name.
func Register(r *domains.Registry) error {
	return domains.RegisterDomain(r, Domain,
		domains.Spec[PRCreated]{
			RoutingKey:  RoutingKeyPRCreated,
			Aliases:     []string{"GitHubPRCreatedPayload"},
			Description: "A pull request was created; its details are in a cache under cache_key.",
			Example:     PRCreated{CacheKey: "trinote|423", CacheType: CacheRedis},
		})
}
