package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeDotenv(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadSettings_serviceNameDefault(t *testing.T) {
	withFile := writeDotenv(t, "service_name=from_file\n")
	withoutFile := writeDotenv(t, "EXCHANGE_NAME=x\n")
	for _, tc := range []struct {
		name    string
		environ []string
		dotenv  string
		want    string
	}{
		{"unset", nil, filepath.Join(t.TempDir(), "missing.env"), "command_processor"},
		{"unset, .env without it", nil, withoutFile, "command_processor"},
		{"environment", []string{"SERVICE_NAME=mine"}, withoutFile, "mine"},
		{"environment, any case, even the library default", []string{"service_name=bloodbank"}, "", "bloodbank"},
		{".env", nil, withFile, "from_file"},
		{"environment wins over .env", []string{"SERVICE_NAME=env"}, withFile, "env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadSettings(tc.environ, tc.dotenv)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Bus.ServiceName != tc.want {
				t.Errorf("service name = %q, want %q", cfg.Bus.ServiceName, tc.want)
			}
		})
	}
}

// Every setting, the processor's own and the libraries' alike, comes from
// the environment or .env, the environment winning, names in any case.
func TestLoadSettings_dotenvAndEnvironment(t *testing.T) {
	dotenv := writeDotenv(t, "BB_COMMAND_TIMEOUT=2s\nbb_echo_delay=20ms\nBB_DEMO=1\nBB_PREFETCH=3\nredis_port=6380\nHTTP_PORT=9000\nBB_LOG_LEVEL=debug\n")
	cfg, err := loadSettings(nil, dotenv)
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Own; o.CommandTimeout != 2*time.Second || o.EchoDelay != 20*time.Millisecond || !o.Demo {
		t.Errorf("own settings = %+v, want those of .env", o)
	}
	if cfg.Bus.Prefetch != 3 || cfg.Redis.Port != 6380 || cfg.HTTP.Port != 9000 || cfg.Telemetry.LogLevel != "debug" {
		t.Errorf("settings = %+v, want BB_PREFETCH, REDIS_PORT, HTTP_PORT, BB_LOG_LEVEL of .env", cfg)
	}

	cfg, err = loadSettings([]string{"Bb_Command_Timeout=3s", "BB_PREFETCH=5", "BB_DEMO=false"}, dotenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Own.CommandTimeout != 3*time.Second || cfg.Bus.Prefetch != 5 || cfg.Own.Demo {
		t.Errorf("settings = %+v, want the environment to win over .env", cfg)
	}

	cfg, err = loadSettings(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Own != (own{CommandTimeout: time.Minute, EventLog: "off", EventLogMaxAge: "7D", EventLogMaxBytes: 1_000_000_000}) {
		t.Errorf("defaults = %+v, want no demo, no delay, a 1m command timeout, no event log (7D, 1 GB when on)", cfg.Own)
	}
}

func TestLoadSettings_everyProblemNamesItsVariable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		dotenv  string
		want    []string
	}{
		{".env, own", nil, "BB_COMMAND_TIMEOUT=soon\n", []string{"BB_COMMAND_TIMEOUT: want a duration"}},
		{".env, the bus's", nil, "BB_DRAIN_TIMEOUT=soon\n", []string{"BB_DRAIN_TIMEOUT: want a duration"}},
		{"environment", []string{"BB_DEMO=yes please"}, "", []string{"BB_DEMO: want true or false"}},
		{"out of range", []string{"BB_COMMAND_TIMEOUT=0s", "BB_ECHO_DELAY=-1s", "BB_MAX_ROOT_TOKENS=-5"}, "", []string{"BB_COMMAND_TIMEOUT: want a positive", "BB_ECHO_DELAY", "BB_MAX_ROOT_TOKENS: want 0 (off)"}},
		{
			"event log", []string{"BB_EVENT_LOG=yes", "BB_EVENT_LOG_MAX_AGE=7 days", "BB_EVENT_LOG_MAX_BYTES=0"}, "",
			[]string{"BB_EVENT_LOG: want on or off", "BB_EVENT_LOG_MAX_AGE: want a number and a unit", "BB_EVENT_LOG_MAX_BYTES: want a positive"},
		},
		{
			"all at once, from every part", []string{"BB_PREFETCH=ten", "REDIS_PORT=99999", "HTTP_PORT=-1", "BB_LOG_FORMAT=xml"},
			"BB_COMMAND_TIMEOUT=soon\nBB_QUEUE_TYPE=stream\n",
			[]string{"BB_PREFETCH", "REDIS_PORT", "HTTP_PORT", "BB_LOG_FORMAT", "BB_COMMAND_TIMEOUT", "BB_QUEUE_TYPE"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dotenv := ""
			if tc.dotenv != "" {
				dotenv = writeDotenv(t, tc.dotenv)
			}
			_, err := loadSettings(tc.environ, dotenv)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestParseFlags_overrideTheSettings(t *testing.T) {
	base := own{Demo: true, EchoDelay: time.Second, CommandTimeout: time.Minute}
	for _, tc := range []struct {
		name    string
		args    []string
		want    own
		wantErr bool
	}{
		{"none", nil, base, false},
		{"all", []string{"--demo=false", "--echo-delay=5ms", "--command-timeout=5m"}, own{EchoDelay: 5 * time.Millisecond, CommandTimeout: 5 * time.Minute}, false},
		{"zero command timeout keeps the setting", []string{"--command-timeout=0s"}, base, false},
		{"negative command timeout", []string{"--command-timeout=-1s"}, own{}, true},
		{"negative delay", []string{"--echo-delay=-1s"}, own{}, true},
		{"stray argument", []string{"run"}, own{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			got := base
			f.apply(&got)
			if got != tc.want {
				t.Errorf("settings = %+v, want %+v", got, tc.want)
			}
		})
	}
}
