package correlation_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/correlation"
)

// want is what a test expects of the go-redis options: the kind of
// client and its main fields.
type want struct {
	kind     string // client, failover or cluster
	addrs    []string
	db       int
	user, pw string
	master   string
	sentinel string // Sentinel password
	tls      string // ServerName, "" without TLS
}

func got(o correlation.ClientOptions) want {
	switch {
	case o.Client != nil:
		w := want{kind: "client", addrs: []string{o.Client.Addr}, db: o.Client.DB, user: o.Client.Username, pw: o.Client.Password}
		if o.Client.TLSConfig != nil {
			w.tls = o.Client.TLSConfig.ServerName
		}
		return w
	case o.Failover != nil:
		w := want{kind: "failover", addrs: o.Failover.SentinelAddrs, db: o.Failover.DB, user: o.Failover.Username, pw: o.Failover.Password,
			master: o.Failover.MasterName, sentinel: o.Failover.SentinelPassword}
		if o.Failover.TLSConfig != nil {
			w.tls = o.Failover.TLSConfig.ServerName
		}
		return w
	case o.Cluster != nil:
		w := want{kind: "cluster", addrs: o.Cluster.Addrs, user: o.Cluster.Username, pw: o.Cluster.Password}
		if o.Cluster.TLSConfig != nil {
			w.tls = o.Cluster.TLSConfig.ServerName
		}
		return w
	}
	return want{}
}

// tuning is the two deliberate changes to go-redis's defaults.
func tuning(o correlation.ClientOptions) (contextTimeout bool, dialerRetries int) {
	switch {
	case o.Client != nil:
		return o.Client.ContextTimeoutEnabled, o.Client.DialerRetries
	case o.Failover != nil:
		return o.Failover.ContextTimeoutEnabled, o.Failover.DialerRetries
	case o.Cluster != nil:
		return o.Cluster.ContextTimeoutEnabled, o.Cluster.DialerRetries
	}
	return false, 0
}

func TestSettings_clientOptions(t *testing.T) {
	tests := []struct {
		name string
		in   correlation.Settings
		want want
	}{
		{"defaults like Python", correlation.Settings{}, want{kind: "client", addrs: []string{"localhost:6379"}}},
		{
			"REDIS_HOST/PORT/DB/PASSWORD",
			correlation.Settings{Host: "redis.internal", Port: 6380, DB: 2, Password: "s3cret"},
			want{kind: "client", addrs: []string{"redis.internal:6380"}, db: 2, pw: "s3cret"},
		},
		{
			"REDIS_URL wins over host, port, db; its password over Password",
			correlation.Settings{URL: "redis://app:fromurl@10.0.0.5:7000/3", Host: "ignored", Port: 1, DB: 9, Password: "fromenv"},
			want{kind: "client", addrs: []string{"10.0.0.5:7000"}, db: 3, user: "app", pw: "fromurl"},
		},
		{
			"REDIS_URL without password keeps REDIS_PASSWORD",
			correlation.Settings{URL: "redis://10.0.0.5", Password: "fromenv"},
			want{kind: "client", addrs: []string{"10.0.0.5:6379"}, pw: "fromenv"},
		},
		{
			"rediss is TLS",
			correlation.Settings{URL: "rediss://:pw@cache.example.com:6380/0"},
			want{kind: "client", addrs: []string{"cache.example.com:6380"}, pw: "pw", tls: "cache.example.com"},
		},
		{"IPv6", correlation.Settings{URL: "redis://[::1]:6379"}, want{kind: "client", addrs: []string{"[::1]:6379"}}},
		{"unix socket", correlation.Settings{URL: "unix:///run/redis.sock?db=2"}, want{kind: "client", addrs: []string{"/run/redis.sock"}, db: 2}},
		{
			"cluster, as in docs/local-clusters.md",
			correlation.Settings{URL: "redis://127.0.0.1:7001?addr=127.0.0.1:7002&addr=127.0.0.1:7003", Password: "fromenv"},
			want{kind: "cluster", addrs: []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}, pw: "fromenv"},
		},
		{
			"cluster over TLS with a password",
			correlation.Settings{URL: "rediss://app:pw@n1:7000/0?addr=n2:7001"},
			want{kind: "cluster", addrs: []string{"n1:7000", "n2:7001"}, user: "app", pw: "pw", tls: "n1"},
		},
		{
			"sentinel, as in docs/local-clusters.md",
			correlation.Settings{URL: "redis://127.0.0.1:26391?addr=127.0.0.1:26392&addr=127.0.0.1:26393&master_name=bbmaster", Password: "master-pw"},
			want{kind: "failover", addrs: []string{"127.0.0.1:26391", "127.0.0.1:26392", "127.0.0.1:26393"}, master: "bbmaster", pw: "master-pw"},
		},
		{
			"sentinel: the user info is the Sentinels', the password parameter the master's",
			correlation.Settings{URL: "rediss://:sentinel-pw@s1:26379/2?master_name=m&password=master-pw&addr=s2:26379", Password: "ignored"},
			want{kind: "failover", addrs: []string{"s1:26379", "s2:26379"}, db: 2, master: "m", pw: "master-pw", sentinel: "sentinel-pw", tls: "s1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.in.ClientOptions()
			if err != nil {
				t.Fatalf("ClientOptions: %v", err)
			}
			if g := got(o); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got  %+v\nwant %+v", g, tt.want)
			}
			contextTimeout, dialerRetries := tuning(o)
			if !contextTimeout {
				t.Error("ContextTimeoutEnabled is off: the write timeout would not bound socket I/O")
			}
			if dialerRetries != 1 {
				t.Errorf("DialerRetries = %d, want 1: a refused connection must fail fast", dialerRetries)
			}
		})
	}
}

// Every query parameter go-redis documents works, because go-redis parses
// the URL; a dialer_retries of the URL wins over ours.
func TestSettings_clientOptionsTakeGoRedisParameters(t *testing.T) {
	o, err := correlation.Settings{URL: "redis://h:6379/1?dial_timeout=3&read_timeout=6s&pool_size=7"}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if c := o.Client; c.DialTimeout != 3*time.Second || c.ReadTimeout != 6*time.Second || c.PoolSize != 7 {
		t.Errorf("dial %s read %s pool %d, want 3s, 6s, 7", c.DialTimeout, c.ReadTimeout, c.PoolSize)
	}
	o, err = correlation.Settings{URL: "redis://s1:26379?master_name=m&dialer_retries=3"}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if o.Failover.DialerRetries != 3 {
		t.Errorf("DialerRetries = %d, want the URL's 3", o.Failover.DialerRetries)
	}
}

func TestSettings_badURLsSayWhatIsWrong(t *testing.T) {
	const secret = "Sup3rS3cr3tPa55"
	tests := []struct {
		url  string
		want string
	}{
		{"http://user:" + secret + "@host:6379", "invalid URL scheme: http"},
		{"redis://user:" + secret + "@host:port/0", "invalid port"},
		{"redis://user:" + secret + "@host:6379/notadb", `invalid database number: "notadb"`},
		{"redis://user:" + secret + "@host:6379/0?password=" + secret, "unexpected option: password"},
		{"redis://user:" + secret + "@host:6379/0?dial_timeout=" + secret, "invalid dial_timeout duration"},
		{"redis://user:" + secret + "@ho st:6379/%zz", "REDIS_URL"},
		{"redis://:" + secret + "@n1:7000/3?addr=n2:7000", "database 0 only"},
		{"redis://:" + secret + "@n1:7000?addr=nocolon", "unable to parse addr param: nocolon"},
		{"redis://:" + secret + "@s1:26379?master_name=m&addr=nocolon", "unable to parse addr param: nocolon"},
		{"unix://:" + secret + "@", "empty unix socket path"},
	}
	for _, tt := range tests {
		s := correlation.Settings{URL: tt.url}
		_, err := s.ClientOptions()
		if !errors.Is(err, correlation.ErrInvalidSettings) {
			t.Errorf("%v: err = %v, want ErrInvalidSettings", s, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "REDIS_URL") || !strings.Contains(msg, tt.want) || strings.Contains(msg, secret) {
			t.Errorf("%v: err = %q, want REDIS_URL and %q named, and no password", s, msg, tt.want)
		}
		if err := s.Validate(); err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("%v: Validate = %v, want an error without the password", s, err)
		}
	}
}

func TestNewUniversalClient_kinds(t *testing.T) {
	for name, tt := range map[string]struct {
		in   correlation.Settings
		want any
	}{
		"standalone": {correlation.Settings{}, &redis.Client{}},
		"cluster":    {correlation.Settings{URL: "redis://n1:7000?addr=n2:7001"}, &redis.ClusterClient{}},
		"sentinel":   {correlation.Settings{URL: "redis://s1:26379?master_name=m"}, &redis.Client{}},
		// NewFailoverClient would panic on these options.
		"sentinel, reads on replicas": {correlation.Settings{URL: "redis://s1:26379?master_name=m&route_randomly=true"}, &redis.ClusterClient{}},
	} {
		c, err := correlation.NewUniversalClient(tt.in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if reflect.TypeOf(c) != reflect.TypeOf(tt.want) {
			t.Errorf("%s: client is %T, want %T", name, c, tt.want)
		}
		_ = c.Close()
	}
}

func TestLoadSettings_environmentAndDotenv(t *testing.T) {
	dotenv := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(dotenv, []byte("redis_host=from-file\nREDIS_PORT=6390\nCORRELATION_TTL_DAYS=7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := correlation.LoadSettings([]string{"Redis_Port=6391", "REDIS_PASSWORD=pw"}, dotenv)
	if err != nil {
		t.Fatal(err)
	}
	if s != (correlation.Settings{Host: "from-file", Port: 6391, Password: "pw", TTLDays: 7}) {
		t.Errorf("settings = %#v, want .env read, the environment winning, names case-insensitive", s)
	}
	if ttl := s.RedisConfig().TTL; ttl != 7*24*time.Hour {
		t.Errorf("TTL = %s, want 7 days", ttl)
	}
	s, err = correlation.LoadSettings(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if s != (correlation.Settings{Host: "localhost", Port: 6379, TTLDays: 30}) {
		t.Errorf("defaults = %#v, want Python's", s)
	}

	_, err = correlation.LoadSettings([]string{"REDIS_PORT=99999", "REDIS_DB=x", "CORRELATION_TTL_DAYS=0", "REDIS_PASSWORD=Sup3rS3cr3t"}, "")
	for _, w := range []string{"REDIS_PORT: want 1-65535", "REDIS_DB: want a whole number", "CORRELATION_TTL_DAYS: want 1 or more"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want it to say %q", err, w)
		}
	}
	_, err = correlation.LoadSettings([]string{"REDIS_URL=redis://u:Sup3rS3cr3t@h:6379/x"}, "")
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL") || strings.Contains(err.Error(), "Sup3rS3cr3t") {
		t.Errorf("err = %v, want REDIS_URL named, without its password", err)
	}
}

// The password must never reach a log line or an error message.
func TestSettings_neverShowsPasswords(t *testing.T) {
	const secret = "Sup3rS3cr3tPa55"
	all := []correlation.Settings{
		{Password: secret},
		{URL: "redis://user:" + secret + "@host:6379/0"},
		{URL: "rediss://:" + secret + "@host"},
		{URL: "redis://s1:26379?master_name=m&password=" + secret},
		{URL: "redis://user:" + secret + "@host:port/0"},
		{URL: "http://user:" + secret + "@host:6379"},
		{URL: "redis://user:" + secret + "@ho st:6379/%zz"},
		{URL: "redis://:" + secret + "@n1:7000/3?addr=n2:7000"},
		{Password: secret, Port: 70000},
	}
	check := func(what, s string) {
		t.Helper()
		if strings.Contains(s, secret) {
			t.Errorf("%s shows the password: %s", what, s)
		}
	}
	for _, s := range all {
		check("%v", fmt.Sprintf("%v", s))
		check("%+v", fmt.Sprintf("%+v", s))
		check("%#v", fmt.Sprintf("%#v", s))
		check("String", s.String())
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("redis", "settings", s)
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("redis", "settings", s)
		check("slog", buf.String())
		_, err := correlation.NewUniversalClient(s)
		check("error", fmt.Sprint(err))
		check("Validate", fmt.Sprint(s.Validate()))
	}
	// The dial error of a client built from the settings names the address
	// only.
	c, err := correlation.NewUniversalClient(correlation.Settings{URL: "redis://u:" + secret + "@" + closedPort(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Ping(testCtx(t)).Err()
	if err == nil {
		t.Fatal("PING to a closed port succeeded")
	}
	check("dial error", err.Error())
	if s := fmt.Sprint(correlation.Settings{URL: "redis://u:" + secret + "@h?master_name=m&password=" + secret}); strings.Count(s, "xxxxx") != 2 {
		t.Errorf("redacted URL = %s, want both passwords replaced", s)
	}
}
