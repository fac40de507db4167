package github

import (
	"fmt"

	"github.com/33god/bloodbank-go/domains"
)

// Register adds PRCreated to r under its routing key and its Python class name.
func Register(r *domains.Registry) error {
	err := domains.Register(r, domains.Spec[PRCreated]{
		RoutingKey:  RoutingKeyPRCreated,
		Domain:      Domain,
		Aliases:     []string{"GitHubPRCreatedPayload"},
		Description: "A pull request was created; its details are in a cache under cache_key.",
		Example:     PRCreated{CacheKey: "trinote|423", CacheType: CacheRedis},
	})
	if err != nil {
		return fmt.Errorf("cannot register domain %s: %w", Domain, err)
	}
	return nil
}
