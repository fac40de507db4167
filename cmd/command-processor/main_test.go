package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the binary under test, built once by TestMain: the tests run it
// as an operator does, with settings in the environment, signals, HTTP
// probes and JSON logs.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "command-processor-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot make a temporary directory:", err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "command-processor")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot build command-processor: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// processor is one running command-processor.
type processor struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string // HTTP host:port

	mu      sync.Mutex
	lines   []map[string]any
	changed chan struct{} // closed and replaced on every new line
	done    chan struct{} // closed once the process exited
	code    int
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// start runs the binary in an empty directory (no .env) with a clean
// environment plus env: a developer's RABBIT_URL or REDIS_* must not leak in.
func start(t *testing.T, env ...string) *processor {
	t.Helper()
	return startWith(t, nil, env...)
}

// startWith is start with the process's stdout written to stdout (nil
// discards it).
func startWith(t *testing.T, stdout io.Writer, env ...string) *processor {
	t.Helper()
	return startIn(t, t.TempDir(), stdout, env...)
}

// startIn is startWith in the working directory dir, where a test may have
// written a .env.
func startIn(t *testing.T, dir string, stdout io.Writer, env ...string) *processor {
	t.Helper()
	port := freePort(t)
	p := &processor{t: t, addr: "127.0.0.1:" + port, changed: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(binPath)
	p.cmd.Dir = dir
	p.cmd.Stdout = stdout
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"BB_LOG_FORMAT=json", "BB_LOG_LEVEL=info", "HTTP_HOST=127.0.0.1", "HTTP_PORT=" + port,
		"GORACE=atexit_sleep_ms=0"}, env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				line = map[string]any{"msg": sc.Text(), "raw": true}
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-scanned
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		default:
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			for _, l := range p.log() {
				t.Logf("processor: %v", l)
			}
		}
	})
	return p
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (p *processor) log() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.lines...)
}

// waitLog returns the first log line with message msg ("" for any) for
// which match holds (nil matches any), waiting up to timeout for it.
func (p *processor) waitLog(timeout time.Duration, msg string, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.After(timeout)
	seen := 0
	for {
		p.mu.Lock()
		lines, changed := p.lines, p.changed
		p.mu.Unlock()
		for ; seen < len(lines); seen++ {
			l := lines[seen]
			if (msg == "" || l["msg"] == msg) && (match == nil || match(l)) {
				return l
			}
		}
		select {
		case <-changed:
		case <-p.done:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if seen == n {
				p.t.Fatalf("the processor exited (code %d) before logging %q", p.code, msg)
			}
		case <-deadline:
			p.t.Fatalf("no log line %q within %s", msg, timeout)
		}
	}
}

// count is how many log lines so far have message msg and match.
func (p *processor) count(msg string, match func(map[string]any) bool) int {
	n := 0
	for _, l := range p.log() {
		if l["msg"] == msg && (match == nil || match(l)) {
			n++
		}
	}
	return n
}

func (p *processor) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// exit waits for the process to end and returns its exit code.
func (p *processor) exit(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("the processor did not exit within %s", timeout)
	}
	return 0
}

func (p *processor) get(path string) (int, map[string]any, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + p.addr + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return resp.StatusCode, nil, fmt.Errorf("Content-Type %q", ct)
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, err
}

// waitReady polls /readyz until it answers 200.
func (p *processor) waitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body, err := p.get("/readyz")
		if err == nil && code == http.StatusOK {
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("the processor exited (code %d) before it was ready", p.code)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("not ready within %s: %d %v %v", timeout, code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func outcome(want string) func(map[string]any) bool {
	return func(l map[string]any) bool { return l["outcome"] == want }
}

func TestCommandProcessor_embeddedDemoAnswersAPromptAndExitsZero(t *testing.T) {
	p := start(t, "BB_DEMO=1")
	warn := p.waitLog(10*time.Second, "", func(l map[string]any) bool {
		m, _ := l["msg"].(string)
		return strings.HasPrefix(m, "transport=embedded")
	})
	if warn["transport"] != "embedded" || warn["level"] != "WARN" {
		t.Errorf("transport line = %v", warn)
	}
	started := p.waitLog(10*time.Second, "command-processor starting", nil)
	if started["queue"] != "bloodbank.events.v1.command_processor" {
		t.Errorf("queue = %v, want the default service name command_processor", started["queue"])
	}
	published := p.waitLog(10*time.Second, "demo: prompt published", nil)
	promptID := published["id"].(string)
	cmd := p.waitLog(10*time.Second, "command", func(l map[string]any) bool { return l["id"] == promptID })
	if cmd["type"] != "agent.thread.prompt" || cmd["outcome"] != "executed" || cmd["duration_ms"] == nil {
		t.Errorf("command line = %v, want id, type, duration_ms, outcome executed", cmd)
	}
	resp := p.waitLog(10*time.Second, "demo: response received", nil)
	if resp["correlation_ids"] != promptID || !strings.Contains(resp["payload"].(string), "Hello from the command-processor demo") || resp["deterministic_id"] != true {
		t.Errorf("response line = %v", resp)
	}
	link := p.waitLog(10*time.Second, "demo: correlation link recorded", nil)
	if link["child"] != resp["id"] || link["parents"] != promptID {
		t.Errorf("link line = %v, want child %v with parent %s", link, resp["id"], promptID)
	}

	p.waitReady(10 * time.Second)
	code, body, err := p.get("/healthz")
	if err != nil || code != http.StatusOK || body["ok"] != true || body["service"] != "command_processor" {
		t.Errorf("GET /healthz = %d %v %v", code, body, err)
	}
	code, body, err = p.get("/readyz")
	checks, _ := body["checks"].(map[string]any)
	if err != nil || code != http.StatusOK || checks["broker"] != "ok" || checks["redis"] != "ok" || checks["consuming"] != "ok" {
		t.Errorf("GET /readyz = %d %v %v, want 200 with broker, redis and consuming ok", code, body, err)
	}

	p.signal(syscall.SIGTERM)
	if code := p.exit(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	stopped := p.waitLog(time.Second, "command-processor stopped", nil)
	if stopped["executed"] != 1.0 || stopped["links_recorded"] != 1.0 {
		t.Errorf("stopped line = %v", stopped)
	}
}

// A .env in the working directory is read for every setting, the
// processor's own included, and the environment wins over it.
func TestCommandProcessor_dotenvBesideTheBinaryIsHonoured(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     []string
		timeout time.Duration
	}{
		{".env", nil, 2 * time.Second},
		{"the environment wins", []string{"BB_COMMAND_TIMEOUT=3s"}, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("BB_COMMAND_TIMEOUT=2s\nbb_prefetch=3\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := startIn(t, dir, nil, tc.env...)
			started := p.waitLog(10*time.Second, "command-processor starting", nil)
			s, _ := started["settings"].(map[string]any)
			b, _ := s["bus"].(map[string]any)
			if s["command_timeout"] != float64(tc.timeout) || b["prefetch"] != 3.0 {
				t.Errorf("settings = %v, want command_timeout %s and prefetch 3", s, tc.timeout)
			}
			p.signal(syscall.SIGTERM)
			if code := p.exit(30 * time.Second); code != 0 {
				t.Errorf("exit code %d after SIGTERM, want 0", code)
			}
		})
	}
}

// An invalid value in .env stops the processor at start, with a message
// that names the variable.
func TestCommandProcessor_invalidDotenvIsRefused(t *testing.T) {
	for _, name := range []string{"BB_COMMAND_TIMEOUT", "BB_DRAIN_TIMEOUT"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(name+"=soon\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := startIn(t, dir, nil)
			if code := p.exit(30 * time.Second); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			named := false
			for _, l := range p.log() {
				m, _ := l["msg"].(string)
				named = named || strings.Contains(m, name+": want a duration")
			}
			if !named {
				t.Errorf("no line names %s: %v", name, p.log())
			}
		})
	}
}

func TestCommandProcessor_badSettingsExitOne(t *testing.T) {
	for name, env := range map[string][]string{
		"bad setting": {"BB_PREFETCH=many"},
		"bad option":  {"BB_ECHO_DELAY=soon"},
	} {
		t.Run(name, func(t *testing.T) {
			p := start(t, env...)
			if code := p.exit(30 * time.Second); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
		})
	}
	t.Run("HTTP port taken", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		p := start(t, "HTTP_PORT="+port)
		if code := p.exit(30 * time.Second); code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
	})
}
