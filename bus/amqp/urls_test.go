package amqp

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSplitURLs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ", nil},
		{"amqp://a:b@h1/", []string{"amqp://a:b@h1/"}},
		{"amqp://a:b@h1/,amqp://a:b@h2/", []string{"amqp://a:b@h1/", "amqp://a:b@h2/"}},
		{" amqp://h1/ ,  amqps://h2/ ,", []string{"amqp://h1/", "amqps://h2/"}},
		{"amqp://a:p,w@h1/,AMQP://a:b@h2/", []string{"amqp://a:p,w@h1/", "AMQP://a:b@h2/"}},
		{"amqp://a:p%2Cw@h1/", []string{"amqp://a:p%2Cw@h1/"}},
	} {
		if got := SplitURLs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SplitURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Every credential of every URL is masked, whatever the URL looks like.
func TestRedaction(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		secrets   []string // must appear nowhere
		keep      []string // must still be there, so an operator sees which node
	}{
		// Port 1 refuses at once: Dial fails fast, and logs and errors are checked too.
		{"single", "amqp://guest:s3cret@127.0.0.1:1/", []string{"s3cret"}, []string{"127.0.0.1:1"}},
		{"list", "amqp://guest:pw1@127.0.0.2:1/,amqp://guest:pw2@127.0.0.3:1/,amqp://guest:pw3@127.0.0.4:1/",
			[]string{"pw1", "pw2", "pw3"}, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}},
		{"spaces around commas", " amqp://u:pwA@h1:5681/ ,  amqp://u:pwB@h2:5682/ ", []string{"pwA", "pwB"}, []string{"h1:5681", "h2:5682"}},
		{"bad percent-escape", "amqp://u:ab%zzcd@h1/,amqp://u:efgh@h2/", []string{"ab%zzcd", "efgh"}, []string{"h1", "h2"}},
		{"raw @ in password", "amqp://u:p@ss@h1:5672/", []string{"p@ss"}, []string{"h1:5672"}},
		{"encoded @ in password", "amqp://u:p%40ss@h1:5672/", []string{"p%40ss", "p@ss"}, []string{"h1:5672"}},
		{"raw comma in password", "amqp://u:pa,ss@h1/,amqp://u:other@h2/", []string{"pa,ss", "other"}, []string{"h1", "h2"}},
		{"encoded comma in password", "amqp://u:pa%2Css@h1/", []string{"pa%2Css", "pa,ss"}, []string{"h1"}},
		{"amqps", "amqps://u:tlspw@broker.example:5671/vh", []string{"tlspw"}, []string{"broker.example:5671"}},
		{"no password", "amqp://u@h1/,amqp://h2/", nil, []string{"h1", "h2"}},
		{"user only with colon", "amqp://u:@h1/", nil, []string{"h1"}},
		{"unparsable host and password", "amqp://u:p%w@h1:port/", []string{"p%w"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// What Dial and the reconnect loop log or return.
			var logs strings.Builder
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, dialErr := Dial(ctx, ConnectionConfig{URL: tc.url, ConnectTimeout: 50 * time.Millisecond, Logger: logger})
			outputs := map[string]string{
				"RedactURL": RedactURL(tc.url),
				"redact":    redact("dial "+tc.url+": refused", tc.url),
				"logs":      logs.String(),
			}
			if dialErr != nil {
				outputs["Dial error"] = dialErr.Error()
			}
			for _, one := range SplitURLs(tc.url) {
				outputs["RedactURL of "+one] = RedactURL(one)
			}
			for what, out := range outputs {
				for _, s := range tc.secrets {
					if strings.Contains(out, s) {
						t.Errorf("%s shows the secret %q: %s", what, s, out)
					}
				}
			}
			for _, k := range tc.keep {
				if !strings.Contains(outputs["RedactURL"], k) {
					t.Errorf("RedactURL(%q) = %q lost %q", tc.url, outputs["RedactURL"], k)
				}
			}
		})
	}
}

// Dial takes the first URL that answers and says when it tried the others.
func TestDial_skipsDeadNodes(t *testing.T) {
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Nothing listens on port 1; both refuse at once.
	_, err := Dial(ctx, ConnectionConfig{URL: "amqp://u:pw@127.0.0.1:1/,amqp://u:pw@127.0.0.1:1/", ConnectTimeout: 300 * time.Millisecond, Logger: logger})
	if err == nil {
		t.Fatal("Dial to two dead nodes succeeded")
	}
	if errors.Is(err, context.Canceled) || !strings.Contains(logs.String(), "trying the next") {
		t.Errorf("Dial did not go through the list: err=%v logs=%s", err, logs.String())
	}
	if strings.Contains(logs.String()+err.Error(), "pw@") {
		t.Errorf("a password leaked: %v %s", err, logs.String())
	}
}
