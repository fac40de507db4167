package settings_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/33god/bloodbank-go/internal/settings"
)

type server struct {
	Host    string        `env:"APP_HOST" envDefault:"localhost"`
	Port    int           `env:"APP_PORT" envDefault:"80"`
	Debug   bool          `env:"APP_DEBUG"`
	Timeout time.Duration `env:"APP_TIMEOUT" envDefault:"1s"`
	Secret  string        `env:"APP_SECRET"`
}

func (s server) Validate() error {
	var p []error
	if s.Port < 1 {
		p = append(p, fmt.Errorf("APP_PORT: want 1 or more, got %d", s.Port))
	}
	if s.Timeout <= 0 {
		p = append(p, fmt.Errorf("APP_TIMEOUT: want a positive duration, got %s", s.Timeout))
	}
	return settings.Join(p...)
}

// client has a field named as one of server's: each part names its own
// variables.
type client struct {
	Port int `env:"CLIENT_PORT" envDefault:"81"`
}

func (client) Validate() error { return nil }

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRead_environmentOverDotenvAnyCase(t *testing.T) {
	dotenv := writeFile(t, "# comment\napp_host=file\nexport APP_PORT=8080\nAPP_SECRET='quoted # not a comment'\n")
	vars, err := settings.Read([]string{"App_Port=9090", "NO_VALUE", "EMPTY="}, dotenv)
	if err != nil {
		t.Fatal(err)
	}
	want := settings.Vars{"APP_HOST": "file", "APP_PORT": "9090", "APP_SECRET": "quoted # not a comment", "EMPTY": ""}
	if !reflect.DeepEqual(vars, want) {
		t.Errorf("vars = %v, want %v", vars, want)
	}
	for _, path := range []string{"", filepath.Join(t.TempDir(), "missing.env")} {
		if vars, err := settings.Read(nil, path); err != nil || len(vars) != 0 {
			t.Errorf("Read(nil, %q) = %v, %v; want nothing, no error", path, vars, err)
		}
	}
}

func TestRead_badDotenvIsNotQuoted(t *testing.T) {
	dotenv := writeFile(t, "APP_SECRET=\"s3cret-pw\nAPP_PORT=1\n")
	_, err := settings.Read(nil, dotenv)
	if err == nil || !strings.Contains(err.Error(), dotenv) || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("err = %v, want the file named and its content not quoted", err)
	}
	if _, err := settings.Read(nil, t.TempDir()); err == nil {
		t.Error("a directory read as .env")
	}
}

func TestParse(t *testing.T) {
	var s server
	var c client
	if err := settings.Parse(settings.Vars{"APP_PORT": "8080", "APP_DEBUG": "true", "APP_SECRET": "x"}, &s, &c); err != nil {
		t.Fatal(err)
	}
	if s != (server{Host: "localhost", Port: 8080, Debug: true, Timeout: time.Second, Secret: "x"}) || c.Port != 81 {
		t.Errorf("parsed %+v and %+v, want the values and the defaults", s, c)
	}
	if err := settings.Parse(settings.Vars{"APP_HOST": ""}, &s); err != nil || s.Host != "localhost" {
		t.Errorf("an empty value: %+v, %v; want the default", s, err)
	}
}

func TestParse_everyProblemNamesItsVariableWithoutItsValue(t *testing.T) {
	var s server
	var c client
	err := settings.Parse(settings.Vars{
		"APP_PORT": "s3cret", "APP_DEBUG": "s3cret", "APP_TIMEOUT": "0s", "CLIENT_PORT": "s3cret",
	}, &s, &c)
	var e *settings.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want a *settings.Error", err)
	}
	want := "invalid settings: APP_DEBUG: want true or false; APP_PORT: want a whole number; " +
		"APP_TIMEOUT: want a positive duration, got 0s; CLIENT_PORT: want a whole number"
	if err.Error() != want {
		t.Errorf("err =\n%s\nwant\n%s", err, want)
	}
	if len(e.Problems) != 4 {
		t.Errorf("%d problems, want 4 on their own", len(e.Problems))
	}
}

func TestParse_notAStructIsAProgrammingError(t *testing.T) {
	err := settings.Parse(nil, notAStruct(0))
	var e *settings.Error
	if err == nil || errors.As(err, &e) {
		t.Errorf("err = %v, want an error that is not about the settings", err)
	}
}

type notAStruct int

func (notAStruct) Validate() error { return nil }

func TestJoin(t *testing.T) {
	if err := settings.Join(nil, nil); err != nil {
		t.Errorf("Join(nil, nil) = %v, want nil", err)
	}
	a, b, c := errors.New("A: a"), errors.New("B: b"), errors.New("C: c")
	err := settings.Join(c, settings.Join(b, nil, a))
	if err.Error() != "invalid settings: A: a; B: b; C: c" || !errors.Is(err, b) {
		t.Errorf("err = %v, want the problems flattened, sorted, and each reachable", err)
	}
}
