// Package binsettings holds the settings that bb and command-processor
// share: those of the packages both drive. Each binary keeps its own
// settings struct, which embeds Common and adds its own parts, so that the
// two read the same variables the same way.
package binsettings

import (
	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/cmd/internal/telemetry"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/internal/settings"
)

// Common are the settings of the packages both binaries drive: the bus,
// the correlation store in Redis, the HTTP gateway, and logs and traces.
type Common struct {
	Bus       bus.Config
	Redis     correlation.Settings
	HTTP      gateway.Settings
	Telemetry telemetry.Settings
}

// Load reads the variables of environ over those of the .env file at
// dotenv, as settings.Read does, then parses c and the binary's own parts
// from them. defaults gives a value to a variable that is unset or empty
// in both, before the packages' envDefault: a binary's own default for a
// shared setting. Every problem of every part is reported at once.
func (c *Common) Load(environ []string, dotenv string, defaults settings.Vars, own ...settings.Part) error {
	vars, err := settings.Read(environ, dotenv)
	if err != nil {
		return err
	}
	for k, v := range defaults {
		if vars[k] == "" {
			vars[k] = v
		}
	}
	return settings.Parse(vars, append([]settings.Part{&c.Bus, &c.Redis, &c.HTTP, &c.Telemetry}, own...)...)
}
