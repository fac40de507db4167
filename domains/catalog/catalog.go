package catalog

import (
	"fmt"

	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/agent/feedback"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/domains/artifact"
	"github.com/33god/bloodbank-go/domains/fireflies"
	"github.com/33god/bloodbank-go/domains/github"
	"github.com/33god/bloodbank-go/domains/llm"
	"github.com/33god/bloodbank-go/domains/theboard"
)

// New returns a registry holding every built-in domain.
func New() (*domains.Registry, error) {
	r := domains.NewRegistry()
	if err := Register(r); err != nil {
		return nil, err
	}
	return r, nil
}

// Register adds every built-in domain to r.
func Register(r *domains.Registry) error {
	for _, register := range []func(*domains.Registry) error{
		fireflies.Register,
		thread.Register,
		feedback.Register,
		github.Register,
		llm.Register,
		artifact.Register,
		theboard.Register,
	} {
		if err := register(r); err != nil {
			return fmt.Errorf("cannot register the built-in domains: %w", err)
		}
	}
	return nil
}
