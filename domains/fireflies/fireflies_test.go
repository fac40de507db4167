package fireflies_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/fireflies"
)

func registry(t *testing.T) *domains.Registry {
	t.Helper()
	r := domains.NewRegistry()
	if err := fireflies.Register(r); err != nil {
		t.Fatalf("Register = %v", err)
	}
	return r
}

// As Pydantic's model_dump(mode="json") writes it from a naive datetime:
// explicit nulls, no offset on the timestamp.
const pythonTranscriptReady = `{"id": "01JJQ4ZK8W3M5N7P9R2T4V6X8Z", "title": "Team standup",
 "date": "2026-01-29T10:00:00.123456", "duration": 15.5,
 "transcript_url": "https://app.fireflies.ai/view/01JJQ4ZK8W3M5N7P9R2T4V6X8Z",
 "audio_url": null, "video_url": null,
 "sentences": [{"index": 0, "speaker_name": null, "speaker_id": 0, "raw_text": "hi all", "text": "Hi all.",
   "start_time": 0.0, "end_time": 1.2,
   "ai_filters": {"text_cleanup": "Hi all.", "task": null, "pricing": null, "metric": null, "question": null,
     "date_and_time": null, "sentiment": "neutral"}}],
 "summary": null, "participants": [{"name": "Alice Chen", "email": null}], "speakers": ["Alice Chen"],
 "user": {"user_id": "user_456", "email": "alice@example.com", "name": "Alice Chen", "num_transcripts": 12,
   "minutes_consumed": 210.5, "is_admin": false},
 "host_email": "alice@example.com", "organizer_email": "alice@example.com", "privacy": "link",
 "meeting_link": null, "calendar_id": null, "calendar_type": null, "raw_meeting_info": null}`

func TestTranscriptReady_pythonPayloadValidatesAndDecodes(t *testing.T) {
	r := registry(t)
	if err := r.Validate(fireflies.RoutingKeyTranscriptReady, []byte(pythonTranscriptReady)); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	got, err := domains.Decode[fireflies.TranscriptReady]([]byte(pythonTranscriptReady))
	if err != nil {
		t.Fatalf("Decode = %v", err)
	}
	if want := time.Date(2026, 1, 29, 10, 0, 0, 123456000, time.UTC); !got.Date.Equal(want) {
		t.Errorf("Date = %v, want %v (a naive timestamp is UTC)", got.Date, want)
	}
	s := got.Sentences[0]
	if got.Summary != nil || got.AudioURL != nil || got.RawMeetingInfo != nil || s.SpeakerName != nil || s.AIFilters.Task != nil {
		t.Errorf("explicit nulls did not decode to nil: %+v", got)
	}
	if s.AIFilters.Sentiment != fireflies.SentimentNeutral || got.Participants[0].Name != "Alice Chen" {
		t.Errorf("decoded %+v", got)
	}
}

func TestTranscriptReady_sentenceProblemsHaveFullPaths(t *testing.T) {
	r := registry(t)
	b, _ := json.Marshal(fireflies.SampleTranscriptReady(5))
	payload := strings.Replace(string(b), `"sentiment":"negative"`, `"sentiment":"happy"`, 1) // sentence 4
	payload = strings.Replace(payload, `"speaker_id":0,"raw_text":"um, Can`, `"speaker_id":"0","raw_text":"um, Can`, 1)
	err := r.Validate(fireflies.RoutingKeyTranscriptReady, []byte(payload))
	want := `payload.sentences[2].speaker_id: expected integer, got string; ` +
		`payload.sentences[4].ai_filters.sentiment: expected one of "positive", "negative", "neutral", got "happy"`
	if err == nil || err.Error() != want {
		t.Errorf("Validate =\n %v\nwant\n %s", err, want)
	}
}

func TestTranscriptReady_defaultsOnDecode(t *testing.T) {
	payload := strings.NewReplacer(`"participants": [{"name": "Alice Chen", "email": null}], `, ``, `"speakers": ["Alice Chen"]`, `"speakers": null`).Replace(pythonTranscriptReady)
	got, err := domains.Decode[fireflies.TranscriptReady]([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if got.Participants == nil || len(got.Participants) != 0 || got.Speakers == nil || len(got.Speakers) != 0 {
		t.Errorf("participants %#v speakers %#v, want both empty and non-nil", got.Participants, got.Speakers)
	}
}

func TestTranscriptReady_encodesNullsAndEmptyLists(t *testing.T) {
	b, err := envelope.MarshalPayload(fireflies.TranscriptReady{ID: "x", Sentences: []fireflies.TranscriptSentence{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"audio_url":null`, `"summary":null`, `"participants":[]`, `"speakers":[]`, `"raw_meeting_info":null`, `"date":"0001-01-01T00:00:00.000000Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s\nwant it to contain %s", b, want)
		}
	}
}

func TestTranscriptUpload_offsetTimestampsDecodeToUTC(t *testing.T) {
	r := registry(t)
	for _, ts := range []string{"2026-01-29T10:00:00.5+00:00", "2026-01-29T12:00:00.5+02:00", "2026-01-29T10:00:00.500000Z"} {
		payload := `{"media_file": "/r/a.mp4", "media_duration_seconds": 60, "media_type": "video/mp4", "title": null, "user_id": null, "created_at": "` + ts + `"}`
		if err := r.Validate(fireflies.RoutingKeyTranscriptUpload, []byte(payload)); err != nil {
			t.Errorf("Validate(%s) = %v", ts, err)
		}
		got, err := domains.Decode[fireflies.TranscriptUpload]([]byte(payload))
		if want := time.Date(2026, 1, 29, 10, 0, 0, 5e8, time.UTC); err != nil || !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
			t.Errorf("Decode(%s): CreatedAt = %v, %v; want %v", ts, got.CreatedAt, err, want)
		}
	}
}

func TestTranscriptFailed_defaultsOnDecode(t *testing.T) {
	before := time.Now().Add(-time.Second)
	for _, payload := range []string{
		`{"failed_stage": "upload", "error_message": "disk full"}`,
		`{"failed_stage": "upload", "error_message": "disk full", "timestamp": null, "retry_count": null, "is_retryable": null, "metadata": null}`,
	} {
		got, err := domains.Decode[fireflies.TranscriptFailed]([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		if got.IsRetryable == nil || !*got.IsRetryable || got.RetryCount != 0 || got.Metadata == nil || got.Timestamp.Before(before) {
			t.Errorf("Decode(%s) = %+v, want retryable, 0 retries, empty metadata, timestamp now", payload, got)
		}
	}
}

func TestTranscriptFailed_zeroTimestampEncodesAsNow(t *testing.T) {
	before := time.Now().Add(-time.Second)
	b, _ := envelope.MarshalPayload(fireflies.TranscriptFailed{FailedStage: fireflies.StageProcessing, ErrorMessage: "x"})
	got, err := domains.Decode[fireflies.TranscriptFailed](b)
	if err != nil || got.Timestamp.Before(before) || !strings.Contains(string(b), `"metadata":{}`) {
		t.Errorf("encoded %s, want a current timestamp and empty metadata", b)
	}
}
