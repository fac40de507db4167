// Package theboard holds the payloads of the theboard domain, emitted by
// TheBoard's multi-agent meeting orchestration: a meeting is created and
// started, runs rounds in which agents take turns and comments are
// extracted, and ends converged, completed or failed.
//
// Meeting and agent ids are UUIDs (uuid.UUID), checked by Validate. The
// strategy and turn type name their known values as constants (Strategy,
// TurnType) but are open strings, not enumerations: Python types them as
// str, so a Go validator that rejected a new value would break a meeting
// Python accepts. The types mirror event_producers/events/domains/
// theboard.py (wire contract, section 6).
package theboard
