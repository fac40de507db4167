package binsettings_test

import (
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/cmd/internal/binsettings"
	"github.com/33god/bloodbank-go/internal/settings"
)

func TestCommon_Load_defaultsGiveWayToTheEnvironment(t *testing.T) {
	defaults := settings.Vars{"SERVICE_NAME": "command_processor"}
	tests := []struct {
		name    string
		environ []string
		want    string
	}{
		{"unset", nil, "command_processor"},
		{"empty", []string{"SERVICE_NAME="}, "command_processor"},
		{"set, in any case", []string{"service_name=mine"}, "mine"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c binsettings.Common
			if err := c.Load(tc.environ, "", defaults); err != nil {
				t.Fatal(err)
			}
			if c.Bus.ServiceName != tc.want {
				t.Errorf("service name = %q, want %q", c.Bus.ServiceName, tc.want)
			}
		})
	}
}

func TestCommon_Load_reportsEveryPart(t *testing.T) {
	var c binsettings.Common
	err := c.Load([]string{"BB_PREFETCH=many", "REDIS_PORT=-1", "BB_LOG_FORMAT=xml"}, "", nil)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, name := range []string{"BB_PREFETCH", "REDIS_PORT", "BB_LOG_FORMAT"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}
