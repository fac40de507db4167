package fireflies

import (
	"time"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

// Register adds the domain's payload types to r, each under its routing key
// and its Python class name.
func Register(r *domains.Registry) error {
	return domains.RegisterDomain(r, Domain,
		domains.Spec[TranscriptUpload]{
			RoutingKey:  RoutingKeyTranscriptUpload,
			Aliases:     []string{"FirefliesTranscriptUploadPayload"},
			Description: "Request to upload media to Fireflies for transcription.",
			Example: TranscriptUpload{
				MediaFile:            "/recordings/2026-01-29-standup.mp4",
				MediaDurationSeconds: 930,
				MediaType:            "video/mp4",
				Title:                new("Team standup"),
				UserID:               new("user_456"),
				CreatedAt:            envelope.NewTime(exampleTime),
			},
		},
		domains.Spec[TranscriptReady]{
			RoutingKey:  RoutingKeyTranscriptReady,
			Aliases:     []string{"FirefliesTranscriptReadyPayload"},
			Description: "Fireflies finished a transcript; the full text is included.",
			Example:     SampleTranscriptReady(3),
		},
		domains.Spec[TranscriptProcessed]{
			RoutingKey:  RoutingKeyTranscriptProcessed,
			Aliases:     []string{"FirefliesTranscriptProcessedPayload"},
			Description: "A transcript was ingested into the RAG store.",
			Example: TranscriptProcessed{
				TranscriptID:       "01JJQ4ZK8W3M5N7P9R2T4V6X8Z",
				RAGDocumentID:      "doc_5c1e2f",
				Title:              "Team standup",
				IngestionTimestamp: envelope.NewTime(exampleTime.Add(2 * time.Minute)),
				SentenceCount:      212,
				SpeakerCount:       2,
				DurationMinutes:    15.5,
				VectorStore:        "chroma",
				ChunkCount:         18,
				EmbeddingModel:     new("text-embedding-3-small"),
				Metadata:           map[string]any{"collection": "meetings"},
			},
		},
		domains.Spec[TranscriptFailed]{
			RoutingKey:  RoutingKeyTranscriptFailed,
			Aliases:     []string{"FirefliesTranscriptFailedPayload"},
			Description: "Upload, transcription or RAG ingestion of a transcript failed.",
			Example: TranscriptFailed{
				FailedStage:  StageTranscription,
				ErrorMessage: "Fireflies API returned 429 Too Many Requests",
				ErrorCode:    new("rate_limited"),
				MediaFile:    new("/recordings/2026-01-29-standup.mp4"),
				Timestamp:    envelope.NewTime(exampleTime.Add(time.Minute)),
				RetryCount:   1,
				IsRetryable:  new(true),
				Metadata:     map[string]any{},
			},
		},
	)
}

var exampleTime = time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC)

// SampleTranscriptReady returns a realistic transcript of n sentences
// between two speakers, for examples, tests and benchmarks that need a
// payload of a given size.
func SampleTranscriptReady(n int) TranscriptReady {
	speakers := []string{"Alice Chen", "Bob Okafor"}
	lines := []struct {
		text      string
		sentiment Sentiment
		task      *string
		question  *string
	}{
		{"Morning everyone, let's go through the release blockers.", SentimentNeutral, nil, nil},
		{"The migration finished overnight and all checks are green.", SentimentPositive, nil, nil},
		{"Can we ship the Go consumer before Friday?", SentimentNeutral, nil, new("Can we ship the Go consumer before Friday?")},
		{"I'll pair with Bob on the retry middleware this afternoon.", SentimentPositive, new("Pair on the retry middleware"), nil},
		{"The flaky integration test is still failing on CI.", SentimentNegative, nil, nil},
	}
	sentences := make([]TranscriptSentence, n)
	for i := range sentences {
		line := lines[i%len(lines)]
		start := float64(i) * 4.5
		sentences[i] = TranscriptSentence{
			Index:       i,
			SpeakerName: new(speakers[i%2]),
			SpeakerID:   i % 2,
			RawText:     "um, " + line.text,
			Text:        line.text,
			StartTime:   start,
			EndTime:     start + 4.2,
			AIFilters: AIFilters{
				TextCleanup: line.text,
				Task:        line.task,
				Question:    line.question,
				Sentiment:   line.sentiment,
			},
		}
	}
	return TranscriptReady{
		ID:            "01JJQ4ZK8W3M5N7P9R2T4V6X8Z",
		Title:         "Team standup",
		Date:          envelope.NewTime(exampleTime),
		Duration:      15.5,
		TranscriptURL: "https://app.fireflies.ai/view/01JJQ4ZK8W3M5N7P9R2T4V6X8Z",
		AudioURL:      new("https://cdn.fireflies.ai/audio/01JJQ4ZK8W3M5N7P9R2T4V6X8Z.mp3"),
		Sentences:     sentences,
		Summary:       new("Release blockers reviewed; the Go consumer ships Friday if CI is fixed."),
		Participants: []MeetingParticipant{
			{Name: "Alice Chen", Email: new("alice@example.com")},
			{Name: "Bob Okafor", Email: new("bob@example.com")},
		},
		Speakers: speakers,
		User: User{
			UserID:          "user_456",
			Email:           "alice@example.com",
			Name:            "Alice Chen",
			NumTranscripts:  128,
			MinutesConsumed: 2210.5,
			IsAdmin:         true,
		},
		HostEmail:      "alice@example.com",
		OrganizerEmail: "alice@example.com",
		Privacy:        "link",
		MeetingLink:    new("https://meet.example.com/abc-defg-hij"),
		CalendarID:     new("evt_7f3a9c"),
		CalendarType:   new("google"),
		RawMeetingInfo: map[string]any{"silent_meeting": false, "summary_status": "processed"},
	}
}
