package correlation

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/internal/settings"
)

// Settings say where the correlation store's Redis is and how long links
// live, in the environment variables the Python services read
// (wire-contract section 7), so one .env serves both. For Settings built in
// code, a zero Host, Port or TTLDays means its default. Settings never
// print a password: String, GoString, LogValue and the errors redact it.
type Settings struct {
	// URL is REDIS_URL. Optional; when set it replaces Host, Port and DB.
	// go-redis's parsers read it, query parameters included: one server
	// (redis://, rediss://, unix://), Cluster (more servers in addr=), or
	// Sentinel (master_name=; the URL's user and password are the Sentinels',
	// the master's is the password parameter). Without a password of its
	// own, the client authenticates with Password.
	URL string `env:"REDIS_URL"`
	// Host is REDIS_HOST. Optional; default DefaultHost.
	Host string `env:"REDIS_HOST" envDefault:"localhost"`
	// Port is REDIS_PORT. Optional; default DefaultPort.
	Port int `env:"REDIS_PORT" envDefault:"6379"`
	// DB is REDIS_DB, the database number. Optional; default 0.
	DB int `env:"REDIS_DB" envDefault:"0"`
	// Password is REDIS_PASSWORD. Optional.
	Password string `env:"REDIS_PASSWORD"`
	// TTLDays is CORRELATION_TTL_DAYS, the TTL of the keys a link writes.
	// Optional; default 30 (DefaultTTL).
	TTLDays int `env:"CORRELATION_TTL_DAYS" envDefault:"30"`
}

// DefaultHost and DefaultPort are where the Python services look for Redis
// when REDIS_HOST and REDIS_PORT are unset.
const (
	DefaultHost = "localhost"
	DefaultPort = 6379
)

// ErrInvalidSettings is wrapped by ClientOptions and NewUniversalClient.
var ErrInvalidSettings = errors.New("invalid Redis settings")

// LoadSettings reads the settings from environ (as os.Environ gives it)
// and from the .env file at dotenv, as bus.LoadConfig does.
func LoadSettings(environ []string, dotenv string) (Settings, error) {
	var s Settings
	if err := settings.Load(environ, dotenv, &s); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// Validate reports every problem of the settings as LoadSettings read
// them, each naming its variable.
func (s Settings) Validate() error {
	_, problems := s.resolve()
	if s.URL == "" && s.Port == 0 {
		problems = append(problems, errors.New("REDIS_PORT: want 1-65535, got 0"))
	}
	if s.TTLDays < 1 {
		// A TTL of 0 days would expire each link as it is written.
		problems = append(problems, fmt.Errorf("CORRELATION_TTL_DAYS: want 1 or more, got %d", s.TTLDays))
	}
	return settings.Join(problems...)
}

// RedisConfig is the store configuration with the TTL of TTLDays.
func (s Settings) RedisConfig() RedisConfig {
	return RedisConfig{TTL: TTLFromDays(s.TTLDays)}
}

// ClientOptions are go-redis options; exactly one field is set.
type ClientOptions struct {
	Client   *redis.Options         // one server
	Failover *redis.FailoverOptions // Sentinel
	Cluster  *redis.ClusterOptions  // Redis Cluster
}

// ClientOptions turns the settings into go-redis options, with two defaults
// changed so the store never holds up the bus: ContextTimeoutEnabled, so a
// write's deadline bounds its socket I/O too, and DialerRetries 1 (unless
// the URL sets dialer_retries), so a Redis refusing connections fails a
// write in milliseconds, not after five dial attempts per command retry.
func (s Settings) ClientOptions() (ClientOptions, error) {
	o, problems := s.resolve()
	if len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = p.Error()
		}
		return ClientOptions{}, fmt.Errorf("%w: %s", ErrInvalidSettings, strings.Join(msgs, "; "))
	}
	return o, nil
}

// NewUniversalClient builds the client the settings describe. It does not
// connect; the first command does.
func NewUniversalClient(s Settings) (redis.UniversalClient, error) {
	o, err := s.ClientOptions()
	if err != nil {
		return nil, fmt.Errorf("cannot create Redis client: %w", err)
	}
	switch {
	case o.Failover != nil && (o.Failover.RouteByLatency || o.Failover.RouteRandomly):
		// Routing reads to replicas takes the cluster flavour of the
		// failover client; NewFailoverClient refuses these options.
		return redis.NewFailoverClusterClient(o.Failover), nil
	case o.Failover != nil:
		return redis.NewFailoverClient(o.Failover), nil
	case o.Cluster != nil:
		return redis.NewClusterClient(o.Cluster), nil
	}
	return redis.NewClient(o.Client), nil
}

// resolve returns the options, or every problem of the settings.
func (s Settings) resolve() (ClientOptions, []error) {
	var o ClientOptions
	var problems []error
	if s.URL != "" {
		var err error
		if o, err = s.parseURL(); err != nil {
			problems = append(problems, err)
		}
	} else {
		if s.Port < 0 || s.Port > 65535 {
			problems = append(problems, fmt.Errorf("REDIS_PORT: want 1-65535, got %d", s.Port))
		}
		if s.DB < 0 {
			problems = append(problems, fmt.Errorf("REDIS_DB: want 0 or more, got %d", s.DB))
		}
		o.Client = &redis.Options{
			Addr: net.JoinHostPort(cmp.Or(s.Host, DefaultHost), strconv.Itoa(cmp.Or(s.Port, DefaultPort))),
			DB:   s.DB,
		}
	}
	if len(problems) > 0 {
		return ClientOptions{}, problems
	}
	var timeouts *bool
	var retries *int
	var password *string
	switch {
	case o.Client != nil:
		timeouts, retries, password = &o.Client.ContextTimeoutEnabled, &o.Client.DialerRetries, &o.Client.Password
	case o.Failover != nil:
		timeouts, retries, password = &o.Failover.ContextTimeoutEnabled, &o.Failover.DialerRetries, &o.Failover.Password
	case o.Cluster != nil:
		timeouts, retries, password = &o.Cluster.ContextTimeoutEnabled, &o.Cluster.DialerRetries, &o.Cluster.Password
	}
	*timeouts, *retries, *password = true, cmp.Or(*retries, 1), cmp.Or(*password, s.Password)
	return o, nil
}

// parseURL hands REDIS_URL to the go-redis parser of its kind: Sentinel
// when it names a master, Cluster when it lists more addresses, one server
// otherwise.
func (s Settings) parseURL() (ClientOptions, error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		// url.Error quotes the whole URL, password included; its cause
		// quotes at most the offending characters.
		reason := "not a URL"
		var ue *url.Error
		if errors.As(err, &ue) {
			reason = ue.Err.Error()
		}
		return ClientOptions{}, fmt.Errorf("REDIS_URL: %s (the value is not shown: it may hold a password)", reason)
	}
	var o ClientOptions
	q := u.Query()
	switch {
	case q.Has("master_name"):
		o.Failover, err = redis.ParseFailoverURL(s.URL)
	case q.Has("addr"):
		o.Cluster, err = redis.ParseClusterURL(s.URL)
		if db := strings.Trim(u.Path, "/"); err == nil && db != "" && db != "0" {
			err = errors.New("Redis Cluster has database 0 only: drop the /" + db + " or the addr parameters")
		}
	default:
		o.Client, err = redis.ParseURL(s.URL)
	}
	if err != nil {
		// The error is retold, not wrapped: a caller printing the chain
		// must not find a password that go-redis quoted.
		return ClientOptions{}, fmt.Errorf("REDIS_URL: %s", redactURLSecrets(err.Error(), u))
	}
	return o, nil
}

// redactURLSecrets replaces the passwords of u in msg: the user's, and the
// password parameter of a Sentinel URL.
func redactURLSecrets(msg string, u *url.URL) string {
	secrets := u.Query()["password"]
	if pw, ok := u.User.Password(); ok {
		secrets = append(secrets, pw)
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}

// String describes the settings with passwords replaced by "***" (and by
// "xxxxx" inside the URL).
func (s Settings) String() string {
	r := s.redacted()
	return fmt.Sprintf("{URL:%s Host:%s Port:%d DB:%d Password:%s TTLDays:%d}", r.URL, r.Host, r.Port, r.DB, r.Password, r.TTLDays)
}

// GoString keeps %#v from printing the passwords.
func (s Settings) GoString() string { return "correlation.Settings" + s.String() }

// LogValue keeps slog from printing the passwords.
func (s Settings) LogValue() slog.Value {
	r := s.redacted()
	return slog.GroupValue(
		slog.String("url", r.URL), slog.String("host", r.Host), slog.Int("port", r.Port),
		slog.Int("db", r.DB), slog.String("password", r.Password), slog.Int("ttl_days", r.TTLDays),
	)
}

func (s Settings) redacted() Settings {
	r := s
	if r.Password != "" {
		r.Password = "***"
	}
	if r.URL != "" {
		u, err := url.Parse(r.URL)
		if err != nil {
			r.URL = "(unparsable, not shown)"
			return r
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		r.URL = u.Redacted()
	}
	return r
}
