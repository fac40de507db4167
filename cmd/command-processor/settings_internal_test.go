package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadSettings_serviceNameDefault(t *testing.T) {
	dir := t.TempDir()
	withFile := filepath.Join(dir, "with.env")
	if err := os.WriteFile(withFile, []byte("service_name=from_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withoutFile := filepath.Join(dir, "without.env")
	if err := os.WriteFile(withoutFile, []byte("EXCHANGE_NAME=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		environ []string
		dotenv  string
		want    string
	}{
		{"unset", nil, filepath.Join(dir, "missing.env"), "command_processor"},
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
			if cfg.ServiceName != tc.want {
				t.Errorf("service name = %q, want %q", cfg.ServiceName, tc.want)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		want    options
		wantErr bool
	}{
		{"defaults", nil, nil, options{}, false},
		{"env", nil, []string{"BB_DEMO=1", "bb_echo_delay=20ms"}, options{demo: true, echoDelay: 20 * time.Millisecond}, false},
		{"flags win", []string{"--demo=false", "--echo-delay=5ms"}, []string{"BB_DEMO=1"}, options{echoDelay: 5 * time.Millisecond}, false},
		{"flag", []string{"--demo"}, nil, options{demo: true}, false},
		{"bad BB_DEMO", nil, []string{"BB_DEMO=yes please"}, options{}, true},
		{"bad delay", nil, []string{"BB_ECHO_DELAY=soon"}, options{}, true},
		{"command timeout", []string{"--command-timeout=5m"}, []string{"BB_COMMAND_TIMEOUT=2m"}, options{commandTimeout: 5 * time.Minute}, false},
		{"command timeout from env", nil, []string{"bb_command_timeout=90s"}, options{commandTimeout: 90 * time.Second}, false},
		{"zero command timeout", nil, []string{"BB_COMMAND_TIMEOUT=0s"}, options{}, true},
		{"negative command timeout", []string{"--command-timeout=-1s"}, nil, options{}, true},
		{"negative delay", []string{"--echo-delay=-1s"}, nil, options{}, true},
		{"stray argument", []string{"run"}, nil, options{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOptions(tc.args, tc.environ, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("options = %+v, want %+v", got, tc.want)
			}
			if err == nil && got.commandTimeout == 0 && got.timeout() != defaultCommandTimeout {
				t.Errorf("timeout() = %s without a setting, want %s", got.timeout(), defaultCommandTimeout)
			}
		})
	}
}
