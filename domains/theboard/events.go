package theboard

import "github.com/google/uuid"

// Domain is the domain name, as Python's registry lists it.
const Domain = "theboard"

// Routing keys of the domain, part of the wire contract.
const (
	RoutingKeyMeetingCreated           = "theboard.meeting.created"
	RoutingKeyMeetingStarted           = "theboard.meeting.started"
	RoutingKeyRoundCompleted           = "theboard.meeting.round_completed"
	RoutingKeyCommentExtracted         = "theboard.meeting.comment_extracted"
	RoutingKeyMeetingConverged         = "theboard.meeting.converged"
	RoutingKeyMeetingCompleted         = "theboard.meeting.completed"
	RoutingKeyMeetingFailed            = "theboard.meeting.failed"
	RoutingKeyParticipantAdded         = "theboard.meeting.participant.added"
	RoutingKeyParticipantTurnCompleted = "theboard.meeting.participant.turn.completed"
)

// Strategy is how a meeting picks the next speaker. Known values are
// StrategySequential and StrategyGreedy; others are accepted, as in Python.
type Strategy string

// The strategies TheBoard knows.
const (
	StrategySequential Strategy = "sequential"
	StrategyGreedy     Strategy = "greedy"
)

// TurnType says whether a participant spoke in turn or replied. Known values
// are TurnTypeTurn and TurnTypeResponse; others are accepted, as in Python.
type TurnType string

// The turn types TheBoard knows.
const (
	TurnTypeTurn     TurnType = "turn"
	TurnTypeResponse TurnType = "response"
)

// MeetingCreated reports a new meeting. Python: MeetingCreatedPayload.
type MeetingCreated struct {
	MeetingID  uuid.UUID `json:"meeting_id"`
	Topic      string    `json:"topic"`
	Strategy   Strategy  `json:"strategy" jsonschema_description:"sequential or greedy."`
	MaxRounds  int       `json:"max_rounds"`
	AgentCount *int      `json:"agent_count"`
}

// MeetingStarted reports that a meeting began running. Python: MeetingStartedPayload.
type MeetingStarted struct {
	MeetingID      uuid.UUID `json:"meeting_id"`
	SelectedAgents []string  `json:"selected_agents" jsonschema_description:"Agent names."`
	AgentCount     int       `json:"agent_count"`
}

// RoundCompleted reports a finished round. Python: RoundCompletedPayload.
type RoundCompleted struct {
	MeetingID      uuid.UUID `json:"meeting_id"`
	RoundNum       int       `json:"round_num"`
	AgentName      string    `json:"agent_name"`
	ResponseLength int       `json:"response_length"`
	CommentCount   int       `json:"comment_count"`
	AvgNovelty     float64   `json:"avg_novelty"`
	TokensUsed     int       `json:"tokens_used"`
	Cost           float64   `json:"cost"`
}

// CommentExtracted reports a comment extracted from an agent's response.
// Python: CommentExtractedPayload.
type CommentExtracted struct {
	MeetingID    uuid.UUID `json:"meeting_id"`
	RoundNum     int       `json:"round_num"`
	AgentName    string    `json:"agent_name"`
	CommentText  string    `json:"comment_text"`
	Category     string    `json:"category" jsonschema_description:"e.g. technical_decision, risk, implementation_detail."`
	NoveltyScore float64   `json:"novelty_score"`
}

// MeetingConverged reports that novelty fell below the threshold. Python:
// MeetingConvergedPayload.
type MeetingConverged struct {
	MeetingID        uuid.UUID `json:"meeting_id"`
	RoundNum         int       `json:"round_num"`
	AvgNovelty       float64   `json:"avg_novelty"`
	NoveltyThreshold float64   `json:"novelty_threshold"`
	TotalComments    int       `json:"total_comments"`
}

// MeetingCompleted reports a meeting that finished. Python: MeetingCompletedPayload.
type MeetingCompleted struct {
	MeetingID           uuid.UUID `json:"meeting_id"`
	TotalRounds         int       `json:"total_rounds"`
	TotalComments       int       `json:"total_comments"`
	TotalCost           float64   `json:"total_cost"`
	ConvergenceDetected bool      `json:"convergence_detected"`
	StoppingReason      string    `json:"stopping_reason"`
}

// MeetingFailed reports a meeting whose execution failed. Python: MeetingFailedPayload.
type MeetingFailed struct {
	MeetingID    uuid.UUID `json:"meeting_id"`
	ErrorType    string    `json:"error_type"`
	ErrorMessage string    `json:"error_message"`
	RoundNum     *int      `json:"round_num"`
	AgentName    *string   `json:"agent_name"`
}

// ParticipantAdded reports an agent joining a meeting. Python: ParticipantAddedPayload.
type ParticipantAdded struct {
	MeetingID uuid.UUID `json:"meeting_id"`
	AgentID   uuid.UUID `json:"agent_id"`
	AgentName string    `json:"agent_name"`
	Expertise string    `json:"expertise"`
}

// ParticipantTurnCompleted reports a participant's finished turn. Python:
// ParticipantTurnCompletedPayload.
type ParticipantTurnCompleted struct {
	MeetingID    uuid.UUID `json:"meeting_id"`
	RoundNum     int       `json:"round_num"`
	AgentID      uuid.UUID `json:"agent_id"`
	AgentName    string    `json:"agent_name"`
	TurnType     TurnType  `json:"turn_type" jsonschema_description:"turn or response."`
	ResponseText string    `json:"response_text"`
	TokensUsed   int       `json:"tokens_used"`
}
