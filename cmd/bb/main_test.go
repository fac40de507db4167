package main_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// bbPath is the binary under test, built once by TestMain. The tests run it
// as a user would: arguments, environment, stdin in; exit code, stdout and
// stderr out.
var bbPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bb-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot make a temporary directory:", err)
		os.Exit(1)
	}
	bbPath = filepath.Join(dir, "bb")
	args := []string{"build", "-o", bbPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot build bb: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of bb produced.
type result struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\nstdout:\n%s\nstderr:\n%s", r.code, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
}

// run describes one invocation: extra environment and stdin.
type run struct {
	env   []string
	stdin string
}

// baseEnv is a clean environment: a developer's RABBIT_URL or REDIS_* must
// not leak into the tests, and each run works in an empty directory, so no
// .env is read unless a test writes one.
func baseEnv(extra []string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "BB_LOG_FORMAT=json", "BB_LOG_LEVEL=info",
		// A -race binary sleeps 1 s at exit by default; a data race still
		// fails the run (exit 66).
		"GORACE=atexit_sleep_ms=0"}
	return append(env, extra...)
}

// bb runs the binary to completion (at most a minute).
func bb(t *testing.T, r run, args ...string) result {
	t.Helper()
	return bbIn(t, t.TempDir(), r, args...)
}

func bbIn(t *testing.T, dir string, r run, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bbPath, args...)
	cmd.Env = baseEnv(r.env)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(r.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		t.Fatalf("cannot run bb %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("bb %s did not finish within a minute\n%s", strings.Join(args, " "), res)
	}
	return res
}

// mustSucceed runs bb and fails the test unless it exits 0.
func mustSucceed(t *testing.T, r run, args ...string) result {
	t.Helper()
	res := bb(t, r, args...)
	if res.code != 0 {
		t.Fatalf("bb %s: want exit 0\n%s", strings.Join(args, " "), res)
	}
	return res
}

// process is bb running in the background (tail).
type process struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout syncBuffer
	done   chan struct{}
	err    error

	mu      sync.Mutex
	stderr  []string
	changed chan struct{} // closed and replaced on every stderr line
}

func startBB(t *testing.T, r run, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bbPath, args...)
	cmd.Env = baseEnv(r.env)
	cmd.Dir = t.TempDir()
	p := &process{t: t, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	cmd.Stdout = &p.stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start bb: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr = append(p.stderr, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitStderr blocks until a stderr line contains s, the process ended,
// or 30 s passed.
func (p *process) waitStderr(s string) {
	p.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		p.mu.Lock()
		for _, line := range p.stderr {
			if strings.Contains(line, s) {
				p.mu.Unlock()
				return
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.done:
			p.t.Fatalf("bb ended before writing %q on stderr: %v\nstderr:\n%s", s, p.err, p.stderrText())
		case <-deadline:
			p.t.Fatalf("bb did not write %q on stderr within 30 s\nstderr:\n%s", s, p.stderrText())
		}
	}
}

// waitStdout blocks until stdout contains s, the process ended, or 30 s
// passed.
func (p *process) waitStdout(s string) {
	p.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		text, changed := p.stdout.snapshot()
		if strings.Contains(text, s) {
			return
		}
		select {
		case <-changed:
		case <-p.done:
			if strings.Contains(p.stdout.String(), s) {
				return
			}
			p.t.Fatalf("bb ended before printing %q: %v\nstdout:\n%s\nstderr:\n%s", s, p.err, p.stdout.String(), p.stderrText())
		case <-deadline:
			p.t.Fatalf("bb did not print %q within 30 s\nstdout:\n%s\nstderr:\n%s", s, p.stdout.String(), p.stderrText())
		}
	}
}

// wait waits (at most 30 s) for the process to end and returns its result.
func (p *process) wait() result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("bb did not end within 30 s\nstdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderrText())
	}
	res := result{stdout: p.stdout.String(), stderr: p.stderrText()}
	var exitErr *exec.ExitError
	if errors.As(p.err, &exitErr) {
		res.code = exitErr.ExitCode()
	} else if p.err != nil {
		p.t.Fatalf("bb: %v", p.err)
	}
	return res
}

func (p *process) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once,
// which tells waiters when it grows.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
	}
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	text, _ := b.snapshot()
	return text
}

// snapshot returns the contents and a channel closed at the next write.
func (b *syncBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.buf.String(), b.changed
}

var _ io.Writer = (*syncBuffer)(nil)

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// writeFile writes content to name in a fresh directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeTo(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
