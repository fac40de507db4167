package theboard

import (
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/domains"
)

// Register adds the domain's payload types to r, each under its routing key
// and its Python class name.
func Register(r *domains.Registry) error {
	return domains.RegisterDomain(r, Domain,
		domains.Spec[MeetingCreated]{
			RoutingKey:  RoutingKeyMeetingCreated,
			Aliases:     []string{"MeetingCreatedPayload"},
			Description: "A meeting was created.",
			Example: MeetingCreated{
				MeetingID:  exampleMeeting,
				Topic:      "Should the command processor shard by domain?",
				Strategy:   StrategySequential,
				MaxRounds:  5,
				AgentCount: new(3),
			},
		},
		domains.Spec[MeetingStarted]{
			RoutingKey:  RoutingKeyMeetingStarted,
			Aliases:     []string{"MeetingStartedPayload"},
			Description: "A meeting started running.",
			Example: MeetingStarted{
				MeetingID:      exampleMeeting,
				SelectedAgents: []string{"architect", "sre", "security-reviewer"},
				AgentCount:     3,
			},
		},
		domains.Spec[RoundCompleted]{
			RoutingKey:  RoutingKeyRoundCompleted,
			Aliases:     []string{"RoundCompletedPayload"},
			Description: "A meeting round completed.",
			Example: RoundCompleted{
				MeetingID:      exampleMeeting,
				RoundNum:       2,
				AgentName:      "sre",
				ResponseLength: 1834,
				CommentCount:   4,
				AvgNovelty:     0.62,
				TokensUsed:     2410,
				Cost:           0.0365,
			},
		},
		domains.Spec[CommentExtracted]{
			RoutingKey:  RoutingKeyCommentExtracted,
			Aliases:     []string{"CommentExtractedPayload"},
			Description: "A comment was extracted from an agent's response.",
			Example: CommentExtracted{
				MeetingID:    exampleMeeting,
				RoundNum:     2,
				AgentName:    "sre",
				CommentText:  "Sharding by domain doubles the queues to watch; start with one queue and N consumers.",
				Category:     "risk",
				NoveltyScore: 0.71,
			},
		},
		domains.Spec[MeetingConverged]{
			RoutingKey:  RoutingKeyMeetingConverged,
			Aliases:     []string{"MeetingConvergedPayload"},
			Description: "A meeting converged: novelty fell below the threshold.",
			Example: MeetingConverged{
				MeetingID:        exampleMeeting,
				RoundNum:         4,
				AvgNovelty:       0.18,
				NoveltyThreshold: 0.2,
				TotalComments:    17,
			},
		},
		domains.Spec[MeetingCompleted]{
			RoutingKey:  RoutingKeyMeetingCompleted,
			Aliases:     []string{"MeetingCompletedPayload"},
			Description: "A meeting completed.",
			Example: MeetingCompleted{
				MeetingID:           exampleMeeting,
				TotalRounds:         4,
				TotalComments:       17,
				TotalCost:           0.1432,
				ConvergenceDetected: true,
				StoppingReason:      "converged",
			},
		},
		domains.Spec[MeetingFailed]{
			RoutingKey:  RoutingKeyMeetingFailed,
			Aliases:     []string{"MeetingFailedPayload"},
			Description: "A meeting's execution failed.",
			Example: MeetingFailed{
				MeetingID:    exampleMeeting,
				ErrorType:    "ProviderError",
				ErrorMessage: "anthropic: overloaded",
				RoundNum:     new(3),
				AgentName:    new("security-reviewer"),
			},
		},
		domains.Spec[ParticipantAdded]{
			RoutingKey:  RoutingKeyParticipantAdded,
			Aliases:     []string{"ParticipantAddedPayload"},
			Description: "An agent was added to a meeting.",
			Example: ParticipantAdded{
				MeetingID: exampleMeeting,
				AgentID:   exampleAgent,
				AgentName: "security-reviewer",
				Expertise: "threat modelling",
			},
		},
		domains.Spec[ParticipantTurnCompleted]{
			RoutingKey:  RoutingKeyParticipantTurnCompleted,
			Aliases:     []string{"ParticipantTurnCompletedPayload"},
			Description: "A participant completed a turn.",
			Example: ParticipantTurnCompleted{
				MeetingID:    exampleMeeting,
				RoundNum:     2,
				AgentID:      exampleAgent,
				AgentName:    "security-reviewer",
				TurnType:     TurnTypeResponse,
				ResponseText: "Agree with the SRE: one queue; isolate noisy domains later with priorities.",
				TokensUsed:   388,
			},
		},
	)
}

var (
	exampleMeeting = uuid.MustParse("5f0c7a9e-2b1d-4c8e-9a3f-6d2e1b0c4a77")
	exampleAgent   = uuid.MustParse("a3e1c2d4-7b6f-4e5a-8c9d-0f1e2d3c4b5a")
)
