package bus_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/amqp"
)

func TestLoadConfig_defaultsAreTheContract(t *testing.T) {
	cfg, err := bus.LoadConfig(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServiceName != "bloodbank" || cfg.ExchangeName != "bloodbank.events.v1" || cfg.Prefetch != 10 ||
		cfg.EffectiveConsumers() != 10 || !cfg.Embedded() || cfg.QueueType != amqp.QueueClassic {
		t.Errorf("defaults = %+v, want the wire contract's section 7", cfg)
	}
}

func TestLoadConfig_dotenvAndCaseInsensitiveEnvironment(t *testing.T) {
	dir := t.TempDir()
	dotenv := filepath.Join(dir, ".env")
	if err := os.WriteFile(dotenv, []byte("service_name=from_file\nEXCHANGE_NAME=file.exchange\nBB_PREFETCH=20\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := bus.LoadConfig([]string{"Exchange_Name=env.exchange", "BB_CONSUMERS=3"}, dotenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServiceName != "from_file" || cfg.ExchangeName != "env.exchange" || cfg.Prefetch != 20 || cfg.EffectiveConsumers() != 3 {
		t.Errorf("cfg = %+v: want .env read, the environment winning, names case-insensitive", cfg)
	}
	if _, err := bus.LoadConfig(nil, filepath.Join(dir, "missing.env")); err != nil {
		t.Errorf("a missing .env is not an error: %v", err)
	}
}

// A bad value in .env is refused like one in the environment, and a .env
// that is not KEY=value lines is refused without quoting it.
func TestLoadConfig_badDotenv(t *testing.T) {
	dir := t.TempDir()
	dotenv := filepath.Join(dir, ".env")
	if err := os.WriteFile(dotenv, []byte("BB_PUBLISH_TIMEOUT=soon\nbb_queue_type=stream\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bus.LoadConfig(nil, dotenv)
	if err == nil || !strings.Contains(err.Error(), "BB_PUBLISH_TIMEOUT: want a duration") || !strings.Contains(err.Error(), "BB_QUEUE_TYPE") {
		t.Errorf("err = %v, want BB_PUBLISH_TIMEOUT and BB_QUEUE_TYPE named", err)
	}
	if _, err := bus.LoadConfig([]string{"BB_PUBLISH_TIMEOUT=2s", "BB_QUEUE_TYPE=quorum"}, dotenv); err != nil {
		t.Errorf("the environment should win over the bad values of .env: %v", err)
	}
	if err := os.WriteFile(dotenv, []byte("RABBIT_URL=\"amqp://guest:s3cret-pw@host/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = bus.LoadConfig(nil, dotenv)
	if err == nil || !strings.Contains(err.Error(), dotenv) || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("err = %v, want the file named and its content not quoted", err)
	}
}

func TestLoadConfig_errorsNameTheVariableAndHideSecrets(t *testing.T) {
	tests := []struct {
		env  []string
		want []string
	}{
		{[]string{"BB_PREFETCH=ten"}, []string{"BB_PREFETCH", "whole number"}},
		{[]string{"BB_DRAIN_TIMEOUT=soon"}, []string{"BB_DRAIN_TIMEOUT", "duration"}},
		{[]string{"BB_QUEUE_TYPE=stream"}, []string{"BB_QUEUE_TYPE", "classic or quorum"}},
		{[]string{"RABBIT_URL=http://guest:s3cret-pw@host/"}, []string{"RABBIT_URL", "amqp://"}},
		{[]string{"BB_UNROUTABLE_IS_ERROR=maybe"}, []string{"BB_UNROUTABLE_IS_ERROR", "true or false"}},
		{[]string{"BB_PREFETCH=0", "BB_PUBLISHER_CHANNELS=0", "BB_CONNECT_TIMEOUT=0s"}, []string{"BB_PREFETCH", "BB_PUBLISHER_CHANNELS", "BB_CONNECT_TIMEOUT"}},
		// A value that does not parse does not hide the others' problems.
		{[]string{"BB_PREFETCH=ten", "BB_CONSUMERS=-1"}, []string{"BB_PREFETCH", "BB_CONSUMERS"}},
	}
	for _, tt := range tests {
		_, err := bus.LoadConfig(tt.env, "")
		if err == nil {
			t.Errorf("LoadConfig(%v) accepted it", tt.env)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("LoadConfig(%v) = %q, want it to mention %q", tt.env, err, w)
			}
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("LoadConfig(%v) leaked a password: %q", tt.env, err)
		}
	}
}

func TestConfig_logValueRedactsSecrets(t *testing.T) {
	cfg, err := bus.LoadConfig([]string{"RABBIT_URL=amqp://guest:s3cret-pw@127.0.0.1:5672/"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("settings", slog.Any("settings", cfg))
	if strings.Contains(buf.String(), "s3cret-pw") {
		t.Errorf("log line leaks the password: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "127.0.0.1:5672") {
		t.Errorf("log line lost the broker address: %s", buf.String())
	}
}

// A list of brokers is valid, each URL is checked, and neither the settings
// log line nor the error of a bad entry shows any password of the list.
func TestConfig_rabbitURLListIsCheckedAndRedacted(t *testing.T) {
	list := "amqp://guest:pw-one@127.0.0.1:5681/, amqp://guest:pw,two@127.0.0.1:5682/"
	cfg, err := bus.LoadConfig([]string{"RABBIT_URL=" + list}, "")
	if err != nil {
		t.Fatalf("a list of two URLs is refused: %v", err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("settings", slog.Any("settings", cfg))
	if strings.Contains(buf.String(), "pw-one") || strings.Contains(buf.String(), "pw,two") || !strings.Contains(buf.String(), "5682") {
		t.Errorf("settings log line: %s", buf.String())
	}
	_, err = bus.LoadConfig([]string{"RABBIT_URL=" + list + ",amqp://guest:pw%zz@/"}, "")
	if err == nil {
		t.Fatal("a list with a bad URL is accepted")
	}
	for _, pw := range []string{"pw-one", "pw,two", "pw%zz"} {
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error %q shows a password", err)
		}
	}
}

// An unreachable broker at start is retried with a log line per attempt,
// for no longer than the connect timeout, and the error names the broker
// without its password.
func TestDialAMQP_unreachableGivesUpWithinTheTimeout(t *testing.T) {
	var logs bytes.Buffer
	start := time.Now()
	_, err := amqp.Dial(context.Background(), amqp.ConnectionConfig{
		URL:            "amqp://guest:s3cret-pw@127.0.0.1:1/",
		ConnectTimeout: 1500 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("DialAMQP to a closed port succeeded")
	}
	if elapsed > 10*time.Second {
		t.Errorf("gave up after %s, want about the 1.5s connect timeout", elapsed)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error = %q: want the address, never the password", err)
	}
	if n := strings.Count(logs.String(), "RabbitMQ not reachable, retrying"); n < 2 {
		t.Errorf("logged %d retry lines, want one per attempt:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "s3cret-pw") {
		t.Errorf("logs leak the password:\n%s", logs.String())
	}
}
