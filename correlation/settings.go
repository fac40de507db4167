package correlation

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus"
)

// Settings says where Redis is. Its fields are the environment variables the
// Python services read (wire-contract section 7), so one .env serves both;
// the bus package fills it from the environment. Settings never prints its
// passwords: String, GoString and LogValue redact them, and no error built
// from Settings contains them.
type Settings struct {
	// URL is REDIS_URL: redis://[user:password@]host[:port][/db] or
	// rediss:// for TLS. Optional; when set it replaces Host, Port and DB,
	// and its password (if any) replaces Password. Query parameters:
	// addr=host:port (repeatable) adds addresses, master_name=NAME selects
	// Sentinel; no other parameter is accepted.
	URL string
	// Host is REDIS_HOST. Optional, default "localhost".
	Host string
	// Port is REDIS_PORT. Optional, default 6379.
	Port int
	// DB is REDIS_DB, the database number. Optional, default 0. Redis
	// Cluster has only database 0.
	DB int
	// Username is the ACL user. Optional.
	Username string
	// Password is REDIS_PASSWORD. Optional.
	Password string
	// Addrs adds host:port addresses after the first one (Host:Port or the
	// URL's). Optional. Without MasterName, two or more addresses make a
	// Redis Cluster client.
	Addrs []string
	// MasterName selects Sentinel: the addresses are then the Sentinels'
	// and MasterName is the monitored master. Optional.
	MasterName string
	// SentinelPassword authenticates to the Sentinels. Optional.
	SentinelPassword string
}

// DefaultHost and DefaultPort are where the Python services look for Redis
// when REDIS_HOST and REDIS_PORT are unset.
const (
	DefaultHost = "localhost"
	DefaultPort = 6379
)

// ErrInvalidSettings is wrapped by every error about Settings.
var ErrInvalidSettings = errors.New("invalid Redis settings")

// UniversalOptions turns the settings into go-redis options: a standalone
// client for one address, a Cluster client for several, a Sentinel failover
// client when MasterName is set. Two go-redis defaults are changed for a
// store that must never hold up the bus: ContextTimeoutEnabled is on, so the
// deadline of a correlation write bounds its socket reads and writes too,
// and DialerRetries is 1, so a Redis that refuses connections fails a write
// in milliseconds rather than after go-redis's five dial attempts per
// command retry.
func (s Settings) UniversalOptions() (*redis.UniversalOptions, error) {
	host, port, db := s.Host, s.Port, s.DB
	username, password := s.Username, s.Password
	addrs := slices0(s.Addrs)
	master := s.MasterName
	var tlsConfig *tls.Config
	var problems []string

	if s.URL != "" {
		u, err := url.Parse(s.URL)
		if err != nil {
			// url.Error quotes the whole URL, password included: say less.
			return nil, fmt.Errorf("%w: REDIS_URL is not a URL (the value is not shown: it may hold a password)", ErrInvalidSettings)
		}
		switch u.Scheme {
		case "redis":
		case "rediss":
			tlsConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		default:
			problems = append(problems, fmt.Sprintf("REDIS_URL scheme %q is not redis or rediss", u.Scheme))
		}
		host = u.Hostname()
		port = 0
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				problems = append(problems, fmt.Sprintf("REDIS_URL port %q is not a number", p))
			}
			port = n
		}
		db = 0
		if path := strings.Trim(u.Path, "/"); path != "" {
			n, err := strconv.Atoi(path)
			if err != nil || n < 0 {
				problems = append(problems, fmt.Sprintf("REDIS_URL path %q is not a database number", u.Path))
			}
			db = n
		}
		if u.User != nil {
			if name := u.User.Username(); name != "" {
				username = name
			}
			if pw, ok := u.User.Password(); ok {
				password = pw
			}
		}
		q := u.Query()
		addrs = append(addrs, q["addr"]...)
		if m := q.Get("master_name"); m != "" {
			master = m
		}
		for name := range q {
			if name != "addr" && name != "master_name" {
				problems = append(problems, fmt.Sprintf("REDIS_URL parameter %q is not supported (only addr and master_name)", name))
			}
		}
	}
	if host == "" {
		host = DefaultHost
	}
	if port == 0 {
		port = DefaultPort
	}
	if port < 1 || port > 65535 {
		problems = append(problems, fmt.Sprintf("port %d is not between 1 and 65535", port))
	}
	if db < 0 {
		problems = append(problems, fmt.Sprintf("database number %d is negative", db))
	}
	all := append([]string{net.JoinHostPort(host, strconv.Itoa(port))}, addrs...)
	for _, a := range all[1:] {
		if _, _, err := net.SplitHostPort(a); err != nil {
			problems = append(problems, fmt.Sprintf("address %q is not host:port", a))
		}
	}
	if master == "" && len(all) > 1 && db != 0 {
		problems = append(problems, fmt.Sprintf("database %d is not available in Redis Cluster (several addresses, no master name)", db))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidSettings, strings.Join(problems, "; "))
	}
	return &redis.UniversalOptions{
		Addrs:                 all,
		DB:                    db,
		Username:              username,
		Password:              password,
		MasterName:            master,
		SentinelPassword:      s.SentinelPassword,
		TLSConfig:             tlsConfig,
		ContextTimeoutEnabled: true,
		DialerRetries:         1,
	}, nil
}

// NewUniversalClient builds the client the settings describe. It does not
// connect; the first command does.
func NewUniversalClient(s Settings) (redis.UniversalClient, error) {
	opts, err := s.UniversalOptions()
	if err != nil {
		return nil, fmt.Errorf("cannot create Redis client: %w", err)
	}
	return redis.NewUniversalClient(opts), nil
}

// String describes the settings with passwords replaced by "***" (and by
// "xxxxx" inside the URL), so that logging a Settings is safe.
func (s Settings) String() string {
	r := s.redacted()
	return fmt.Sprintf("{URL:%s Host:%s Port:%d DB:%d Username:%s Password:%s Addrs:%v MasterName:%s SentinelPassword:%s}",
		r.URL, r.Host, r.Port, r.DB, r.Username, r.Password, r.Addrs, r.MasterName, r.SentinelPassword)
}

// GoString keeps %#v from printing the passwords.
func (s Settings) GoString() string { return "correlation.Settings" + s.String() }

// LogValue keeps slog from printing the passwords.
func (s Settings) LogValue() slog.Value {
	r := s.redacted()
	return slog.GroupValue(
		slog.String("url", r.URL), slog.String("host", r.Host), slog.Int("port", r.Port),
		slog.Int("db", r.DB), slog.String("username", r.Username), slog.String("password", r.Password),
		slog.Any("addrs", r.Addrs), slog.String("master_name", r.MasterName),
		slog.String("sentinel_password", r.SentinelPassword),
	)
}

func (s Settings) redacted() Settings {
	r := s
	r.Addrs = slices0(s.Addrs)
	if r.Password != "" {
		r.Password = "***"
	}
	if r.SentinelPassword != "" {
		r.SentinelPassword = "***"
	}
	if r.URL != "" {
		u, err := url.Parse(r.URL)
		switch {
		case err != nil:
			r.URL = "(unparsable, not shown)"
		default:
			// Only the parameters UniversalOptions accepts are shown: any
			// other (password=…) may be a secret put in the wrong place.
			q := u.Query()
			for name := range q {
				if name != "addr" && name != "master_name" {
					q[name] = []string{"xxxxx"}
				}
			}
			u.RawQuery = q.Encode()
			r.URL = u.Redacted()
		}
	}
	return r
}

func slices0(s []string) []string { return append([]string(nil), s...) }

// SettingsFromConfig takes the Redis settings out of a service's bus
// settings (REDIS_URL, REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD).
func SettingsFromConfig(cfg bus.Config) Settings {
	return Settings{URL: cfg.RedisURL, Host: cfg.RedisHost, Port: cfg.RedisPort, DB: cfg.RedisDB, Password: cfg.RedisPassword}
}

// RedisConfigFromConfig is the store configuration a service's settings
// ask for: the TTL from CORRELATION_TTL_DAYS, every other field default.
func RedisConfigFromConfig(cfg bus.Config) RedisConfig {
	return RedisConfig{TTL: TTLFromDays(cfg.CorrelationTTLDays)}
}
