package correlation_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/correlation"
)

func TestSettings_universalOptions(t *testing.T) {
	tests := []struct {
		name     string
		in       correlation.Settings
		addrs    []string
		db       int
		user, pw string
		master   string
		tls      bool
	}{
		{name: "defaults like Python", in: correlation.Settings{}, addrs: []string{"localhost:6379"}},
		{
			name:  "REDIS_HOST/PORT/DB/PASSWORD",
			in:    correlation.Settings{Host: "redis.internal", Port: 6380, DB: 2, Password: "s3cret"},
			addrs: []string{"redis.internal:6380"}, db: 2, pw: "s3cret",
		},
		{
			name:  "REDIS_URL wins over host, port, db; its password over Password",
			in:    correlation.Settings{URL: "redis://app:fromurl@10.0.0.5:7000/3", Host: "ignored", Port: 1, DB: 9, Password: "fromenv"},
			addrs: []string{"10.0.0.5:7000"}, db: 3, user: "app", pw: "fromurl",
		},
		{
			name:  "REDIS_URL without password keeps REDIS_PASSWORD",
			in:    correlation.Settings{URL: "redis://10.0.0.5", Password: "fromenv"},
			addrs: []string{"10.0.0.5:6379"}, pw: "fromenv",
		},
		{
			name:  "rediss is TLS",
			in:    correlation.Settings{URL: "rediss://:pw@cache.example.com:6380/0"},
			addrs: []string{"cache.example.com:6380"}, pw: "pw", tls: true,
		},
		{
			name:  "IPv6",
			in:    correlation.Settings{URL: "redis://[::1]:6379"},
			addrs: []string{"[::1]:6379"},
		},
		{
			name:  "cluster: several addresses",
			in:    correlation.Settings{URL: "redis://:pw@n1:7000?addr=n2:7001&addr=n3:7002"},
			addrs: []string{"n1:7000", "n2:7001", "n3:7002"}, pw: "pw",
		},
		{
			name:  "sentinel: master name",
			in:    correlation.Settings{Host: "s1", Port: 26379, Addrs: []string{"s2:26379"}, MasterName: "mymaster", DB: 1, Password: "pw"},
			addrs: []string{"s1:26379", "s2:26379"}, db: 1, pw: "pw", master: "mymaster",
		},
		{
			name:  "sentinel from the URL",
			in:    correlation.Settings{URL: "redis://s1:26379/2?master_name=mymaster&addr=s2:26379"},
			addrs: []string{"s1:26379", "s2:26379"}, db: 2, master: "mymaster",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.in.UniversalOptions()
			if err != nil {
				t.Fatalf("UniversalOptions: %v", err)
			}
			if !reflect.DeepEqual(o.Addrs, tt.addrs) || o.DB != tt.db || o.Username != tt.user ||
				o.Password != tt.pw || o.MasterName != tt.master || (o.TLSConfig != nil) != tt.tls {
				t.Errorf("got addrs %v db %d user %q pw %q master %q tls %v\nwant addrs %v db %d user %q pw %q master %q tls %v",
					o.Addrs, o.DB, o.Username, o.Password, o.MasterName, o.TLSConfig != nil,
					tt.addrs, tt.db, tt.user, tt.pw, tt.master, tt.tls)
			}
			if !o.ContextTimeoutEnabled {
				t.Error("ContextTimeoutEnabled is off: the write timeout would not bound socket I/O")
			}
			if o.DialerRetries != 1 {
				t.Errorf("DialerRetries = %d, want 1: a refused connection must fail fast", o.DialerRetries)
			}
		})
	}
}

func TestNewUniversalClient_kinds(t *testing.T) {
	for name, tt := range map[string]struct {
		in   correlation.Settings
		want any
	}{
		"standalone": {correlation.Settings{}, &redis.Client{}},
		"cluster":    {correlation.Settings{Addrs: []string{"n2:7001"}}, &redis.ClusterClient{}},
		"sentinel":   {correlation.Settings{MasterName: "m"}, &redis.Client{}},
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

// The password must never reach a log line or an error message.
func TestSettings_neverShowsPasswords(t *testing.T) {
	const secret = "Sup3rS3cr3tPa55"
	valid := []correlation.Settings{
		{Password: secret, SentinelPassword: secret},
		{URL: "redis://user:" + secret + "@host:6379/0"},
		{URL: "rediss://:" + secret + "@host"},
	}
	invalid := []correlation.Settings{
		{URL: "redis://user:" + secret + "@host:port/0"},      // bad port
		{URL: "redis://user:" + secret + "@host:6379/notadb"}, // bad db
		{URL: "http://user:" + secret + "@host:6379"},         // bad scheme
		{URL: "redis://user:" + secret + "@host:6379/0?password=" + secret},
		{URL: "redis://user:" + secret + "@ho st:6379/%zz"}, // not a URL
		{URL: "redis://:" + secret + "@n1:7000/3?addr=n2:7000"},
		{Password: secret, Port: 70000},
		{Password: secret, Addrs: []string{"nocolon"}},
	}
	check := func(what, s string) {
		t.Helper()
		if strings.Contains(s, secret) {
			t.Errorf("%s shows the password: %s", what, s)
		}
	}
	for _, s := range append(valid, invalid...) {
		check("%v", fmt.Sprintf("%v", s))
		check("%+v", fmt.Sprintf("%+v", s))
		check("%#v", fmt.Sprintf("%#v", s))
		check("%s", fmt.Sprintf("%s", s))
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("redis", "settings", s)
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("redis", "settings", s)
		check("slog", buf.String())
	}
	for _, s := range invalid {
		_, err := s.UniversalOptions()
		if !errors.Is(err, correlation.ErrInvalidSettings) {
			t.Errorf("UniversalOptions(%v) err = %v, want ErrInvalidSettings", s, err)
			continue
		}
		check("error", err.Error())
		_, err = correlation.NewUniversalClient(s)
		check("error", fmt.Sprint(err))
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
	if s := fmt.Sprint(correlation.Settings{URL: "redis://u:" + secret + "@h"}); !strings.Contains(s, "xxxxx") {
		t.Errorf("redacted URL = %s, want the password replaced", s)
	}
}
