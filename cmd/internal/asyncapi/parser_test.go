package asyncapi_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/33god/bloodbank-go/cmd/internal/asyncapi"
)

// parserDir holds the pinned @asyncapi/parser and the script that runs it.
const parserDir = "testdata/parser"

var npmCI struct {
	once sync.Once
	err  error
	out  []byte
}

// requireParser installs the pinned parser once per test binary, or skips
// the test when Node is absent (fails instead under BB_REQUIRE_SERVICES=1).
func requireParser(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " is not on PATH: the AsyncAPI parser check needs Node.js and npm (apt-get install nodejs npm)"
			if os.Getenv("BB_REQUIRE_SERVICES") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	npmCI.once.Do(func() {
		if _, err := os.Stat(filepath.Join(parserDir, "node_modules", "@asyncapi", "parser")); err == nil {
			return
		} else if !errors.Is(err, os.ErrNotExist) {
			npmCI.err = err
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = parserDir
		npmCI.out, npmCI.err = cmd.CombinedOutput()
	})
	if npmCI.err != nil {
		t.Fatalf("cannot install @asyncapi/parser with npm ci in %s (the npm registry must be reachable once): %v\n%s", parserDir, npmCI.err, npmCI.out)
	}
}

// checkWithParser runs the official parser on doc and fails on any
// diagnostic of severity error.
func checkWithParser(t *testing.T, doc []byte) {
	t.Helper()
	requireParser(t)
	path := filepath.Join(t.TempDir(), "doc.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "check.mjs", path)
	cmd.Dir = parserDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("@asyncapi/parser rejects the document: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestGenerate_passesTheAsyncAPIParser(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts asyncapi.Options
	}{
		{"no broker URL", asyncapi.Options{}},
		{"broker URL with credentials and vhost", asyncapi.Options{
			ExchangeName: "test.events", BrokerURL: "amqps://bb:s3cret@rabbit.example.com:5671/prod"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := asyncapi.Generate(registry(t), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			checkWithParser(t, doc)
		})
	}
}
