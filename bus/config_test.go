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
	if cfg.ServiceName != "bloodbank" || cfg.ExchangeName != "bloodbank.events.v1" || cfg.RedisHost != "localhost" ||
		cfg.RedisPort != 6379 || cfg.CorrelationTTLDays != 30 || cfg.HTTPPort != 8682 || cfg.Prefetch != 10 ||
		cfg.EffectiveConsumers() != 10 || !cfg.Embedded() {
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

func TestLoadConfig_errorsNameTheVariableAndHideSecrets(t *testing.T) {
	tests := []struct {
		env  []string
		want []string
	}{
		{[]string{"BB_PREFETCH=ten"}, []string{"BB_PREFETCH", "whole number"}},
		{[]string{"REDIS_PORT=99999"}, []string{"REDIS_PORT"}},
		{[]string{"BB_DRAIN_TIMEOUT=soon"}, []string{"BB_DRAIN_TIMEOUT", "duration"}},
		{[]string{"BB_QUEUE_TYPE=stream"}, []string{"BB_QUEUE_TYPE", "classic or quorum"}},
		{[]string{"BB_LOG_FORMAT=xml"}, []string{"BB_LOG_FORMAT"}},
		{[]string{"BB_TRACING=jaeger"}, []string{"BB_TRACING"}},
		{[]string{"RABBIT_URL=http://guest:s3cret-pw@host/"}, []string{"RABBIT_URL", "amqp://"}},
		{[]string{"REDIS_URL=mongodb://u:s3cret-pw@h/"}, []string{"REDIS_URL"}},
		{[]string{"BB_PREFETCH=0", "CORRELATION_TTL_DAYS=0"}, []string{"BB_PREFETCH", "CORRELATION_TTL_DAYS"}},
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
	cfg, err := bus.LoadConfig([]string{"RABBIT_URL=amqp://guest:s3cret-pw@127.0.0.1:5672/", "REDIS_PASSWORD=r3dis-pw", "HTTP_TOKEN=t0ken"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("settings", slog.Any("settings", cfg))
	for _, secret := range []string{"s3cret-pw", "r3dis-pw", "t0ken"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log line leaks %q: %s", secret, buf.String())
		}
	}
	if !strings.Contains(buf.String(), "127.0.0.1:5672") {
		t.Errorf("log line lost the broker address: %s", buf.String())
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
