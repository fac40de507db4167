// Package catalog assembles the built-in Bloodbank domains, those of the
// Python system (wire contract, section 6), into a domains.Registry.
//
// A service that only handles built-in events calls New. A service that adds
// its own domain calls New and then its own Register function on the result
// (see the domains package doc). The registry New returns is the caller's:
// there is no process-wide registry to mutate by accident.
package catalog
