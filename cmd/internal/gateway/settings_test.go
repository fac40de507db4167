package gateway_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/internal/settings"
)

func TestSettings_readAndNeverShowTheToken(t *testing.T) {
	var s gateway.Settings
	if err := settings.Load([]string{"http_port=9000", "HTTP_TOKEN=t0ken-s3cret"}, "", &s); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != "0.0.0.0:9000" || s.Token != "t0ken-s3cret" {
		t.Errorf("settings = %s, want 0.0.0.0:9000 and the token", s)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("settings", "http", s)
	for _, out := range []string{buf.String(), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		if strings.Contains(out, "t0ken-s3cret") {
			t.Errorf("the token shows: %s", out)
		}
	}
	if err := settings.Load([]string{"HTTP_PORT=70000"}, "", &s); err == nil || !strings.Contains(err.Error(), "HTTP_PORT") {
		t.Errorf("err = %v, want HTTP_PORT named", err)
	}
}
