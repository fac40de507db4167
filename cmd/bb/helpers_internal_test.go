package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/domains/catalog"
)

func TestSetTopLevelString_keepsOrderAndOtherMembers(t *testing.T) {
	tests := []struct{ in, field, value, want string }{
		{`{"action":"created","kind":"k","meta":{"action":"x"}}`, "action", "updated", `{"action":"updated","kind":"k","meta":{"action":"x"}}`},
		{`{ "kind" : "k" }`, "action", "deleted", `{"kind":"k","action":"deleted"}`},
		{`{}`, "action", "a<b>&", `{"action":"a<b>&"}`},
	}
	for _, tt := range tests {
		got, err := setTopLevelString([]byte(tt.in), tt.field, tt.value)
		if err != nil || string(got) != tt.want {
			t.Errorf("setTopLevelString(%s, %s, %s) = %s, %v; want %s", tt.in, tt.field, tt.value, got, err, tt.want)
		}
	}
	if _, err := setTopLevelString([]byte(`[1]`), "a", "b"); err == nil {
		t.Error("an array: want an error")
	}
}

func TestCheckJSONObject_placesTheError(t *testing.T) {
	tests := []struct{ in, want string }{
		{"{\n  \"a\": 1\n  \"b\": 2\n}", "line 3, column 3"},
		{`{"a": tru}`, "line 1, column 10"},
		{`{"a": 1} {"b": 2}`, "unexpected data after the object"},
		{`{"a": 1}]`, "unexpected data after the object"},
		{"  ", "is empty"},
		{`"text"`, "must be a JSON object ({...}), got a string"},
		{`{"a": [1, 2`, "unexpected end of input"},
	}
	for _, tt := range tests {
		err := checkJSONObject("the payload", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("checkJSONObject(%q) = %v, want %q", tt.in, err, tt.want)
		}
		if exitCode(err) != exitUsage {
			t.Errorf("checkJSONObject(%q): exit code %d, want 1", tt.in, exitCode(err))
		}
	}
	if err := checkJSONObject("the payload", []byte(" {\"a\": [1]}\n")); err != nil {
		t.Errorf("a valid object: %v", err)
	}
}

func TestCloseMatches(t *testing.T) {
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want []string
	}{
		{"agent.thread.promt", []string{"agent.thread.prompt"}},
		{"theboard.meeting.start", []string{"theboard.meeting.started"}},
		{"TranscriptRedy", []string{"fireflies.TranscriptReady"}},
		{"AgentThredPrompt", []string{"AgentThreadPrompt"}},
		{"zzzzzz", nil},
	}
	for _, tt := range tests {
		got := closeMatches(reg, tt.name)
		if len(got) == 0 && len(tt.want) == 0 {
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("closeMatches(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPayloadSummary(t *testing.T) {
	got := payloadSummary([]byte(`{"z": null, "prompt": "a long prompt that goes on and on and on and on", "tags": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"], "n": 3}`), 200)
	want := `{n=3 prompt="a long prompt that goes on and on and o…" tags=[…]}`
	if got != want {
		t.Errorf("payloadSummary = %s\nwant             %s", got, want)
	}
	if got := payloadSummary([]byte(`{"a": "`+strings.Repeat("x", 500)+`"}`), 20); len([]rune(got)) != 20 {
		t.Errorf("payloadSummary is not cut at the limit: %s", got)
	}
}
