// Package github holds the payload of the github domain: a pull request was
// created (github.pr.created). Following the Python system's cache-based
// pattern, the event carries only a key to the PR details stored in a cache,
// not the details themselves.
//
// Its deterministic event id (wire contract, section 5) is derived from the
// fields repo_owner, repo_name and pr_number, which are not part of the
// payload: the producer knows them when it caches the PR. The type mirrors
// event_producers/events/domains/github.py.
package github
