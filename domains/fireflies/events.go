package fireflies

import (
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
)

// Domain is the domain name, as Python's registry lists it.
const Domain = "fireflies"

// Routing keys of the domain. They are part of the wire contract: Python
// producers and consumers bind to these exact strings.
const (
	RoutingKeyTranscriptUpload    = "fireflies.transcript.upload"
	RoutingKeyTranscriptReady     = "fireflies.transcript.ready"
	RoutingKeyTranscriptProcessed = "fireflies.transcript.processed"
	RoutingKeyTranscriptFailed    = "fireflies.transcript.failed"
)

// TranscriptUpload asks for a media file to be uploaded to Fireflies for
// transcription. Python: FirefliesTranscriptUploadPayload.
type TranscriptUpload struct {
	MediaFile            string        `json:"media_file" jsonschema_description:"Path or URL of the media file."`
	MediaDurationSeconds int           `json:"media_duration_seconds"`
	MediaType            string        `json:"media_type" jsonschema_description:"MIME type, e.g. audio/mpeg or video/mp4."`
	Title                *string       `json:"title"`
	UserID               *string       `json:"user_id"`
	CreatedAt            envelope.Time `json:"created_at" default:"now"`
}

// TranscriptReady is the finished transcript, as Fireflies' webhook
// delivers it, full text included so consumers need no further API call.
// Python: FirefliesTranscriptReadyPayload.
type TranscriptReady struct {
	ID             string               `json:"id" jsonschema_description:"Fireflies meeting (transcript) ID."`
	Title          string               `json:"title"`
	Date           envelope.Time        `json:"date"`
	Duration       float64              `json:"duration" jsonschema_description:"Duration in minutes."`
	TranscriptURL  string               `json:"transcript_url"`
	AudioURL       *string              `json:"audio_url"`
	VideoURL       *string              `json:"video_url"`
	Sentences      []TranscriptSentence `json:"sentences"`
	Summary        *string              `json:"summary"`
	Participants   []MeetingParticipant `json:"participants" default:"[]"`
	Speakers       []string             `json:"speakers" default:"[]"`
	User           User                 `json:"user"`
	HostEmail      string               `json:"host_email"`
	OrganizerEmail string               `json:"organizer_email"`
	Privacy        string               `json:"privacy" jsonschema_description:"e.g. link or private."`
	MeetingLink    *string              `json:"meeting_link"`
	CalendarID     *string              `json:"calendar_id"`
	CalendarType   *string              `json:"calendar_type"`
	RawMeetingInfo map[string]any       `json:"raw_meeting_info" jsonschema_description:"The webhook's whole meeting_info object."`
}

// TranscriptSentence is one sentence of a transcript.
type TranscriptSentence struct {
	Index       int       `json:"index"`
	SpeakerName *string   `json:"speaker_name"`
	SpeakerID   int       `json:"speaker_id"`
	RawText     string    `json:"raw_text"`
	Text        string    `json:"text" jsonschema_description:"The cleaned-up text."`
	StartTime   float64   `json:"start_time" jsonschema_description:"Seconds from the start."`
	EndTime     float64   `json:"end_time" jsonschema_description:"Seconds from the start."`
	AIFilters   AIFilters `json:"ai_filters"`
}

// AIFilters is what Fireflies' AI extracted from a sentence.
type AIFilters struct {
	TextCleanup string    `json:"text_cleanup"`
	Task        *string   `json:"task"`
	Pricing     *string   `json:"pricing"`
	Metric      *string   `json:"metric"`
	Question    *string   `json:"question"`
	DateAndTime *string   `json:"date_and_time"`
	Sentiment   Sentiment `json:"sentiment"`
}

// Sentiment classifies a sentence. Python: SentimentType.
type Sentiment string

// The sentiments the contract allows.
const (
	SentimentPositive Sentiment = "positive"
	SentimentNegative Sentiment = "negative"
	SentimentNeutral  Sentiment = "neutral"
)

// EnumValues makes the schema, and so Validate, reject any other sentiment.
func (Sentiment) EnumValues() []string {
	return []string{string(SentimentPositive), string(SentimentNegative), string(SentimentNeutral)}
}

// MeetingParticipant is someone who attended the meeting.
type MeetingParticipant struct {
	Name  string  `json:"name"`
	Email *string `json:"email"`
}

// User is the Fireflies user who owns the transcript. Python: FirefliesUser.
type User struct {
	UserID          string  `json:"user_id"`
	Email           string  `json:"email"`
	Name            string  `json:"name"`
	NumTranscripts  int     `json:"num_transcripts"`
	MinutesConsumed float64 `json:"minutes_consumed"`
	IsAdmin         bool    `json:"is_admin"`
}

// TranscriptProcessed reports that a transcript was ingested into the RAG
// store. Python: FirefliesTranscriptProcessedPayload.
type TranscriptProcessed struct {
	TranscriptID       string         `json:"transcript_id" jsonschema_description:"Fireflies transcript ID."`
	RAGDocumentID      string         `json:"rag_document_id"`
	Title              string         `json:"title"`
	IngestionTimestamp envelope.Time  `json:"ingestion_timestamp"`
	SentenceCount      int            `json:"sentence_count"`
	SpeakerCount       int            `json:"speaker_count"`
	DurationMinutes    float64        `json:"duration_minutes"`
	VectorStore        string         `json:"vector_store" jsonschema_description:"e.g. chroma or pinecone."`
	ChunkCount         int            `json:"chunk_count" default:"0"`
	EmbeddingModel     *string        `json:"embedding_model"`
	Metadata           map[string]any `json:"metadata" default:"{}"`
}

// TranscriptFailed reports that an upload, transcription or ingestion
// failed. Python: FirefliesTranscriptFailedPayload.
type TranscriptFailed struct {
	FailedStage  Stage         `json:"failed_stage"`
	ErrorMessage string        `json:"error_message"`
	ErrorCode    *string       `json:"error_code"`
	TranscriptID *string       `json:"transcript_id" jsonschema_description:"Absent when the upload itself failed."`
	MediaFile    *string       `json:"media_file"`
	Timestamp    envelope.Time `json:"timestamp" default:"now"`
	RetryCount   int           `json:"retry_count" default:"0"`
	// IsRetryable defaults to true, as in Python: nil is written as true,
	// so a Go producer that does not say publishes what Python would.
	IsRetryable *bool          `json:"is_retryable" default:"true"`
	Metadata    map[string]any `json:"metadata" default:"{}"`
}

// Stage is the pipeline stage that failed.
type Stage string

// The stages the contract allows.
const (
	StageUpload        Stage = "upload"
	StageTranscription Stage = "transcription"
	StageProcessing    Stage = "processing"
)

// EnumValues makes the schema, and so Validate, reject any other stage.
func (Stage) EnumValues() []string {
	return []string{string(StageUpload), string(StageTranscription), string(StageProcessing)}
}

var (
	_ domains.Enum = Sentiment("")
	_ domains.Enum = Stage("")
)
