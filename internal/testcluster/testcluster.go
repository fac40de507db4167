// Package testcluster starts private RabbitMQ nodes for the disruptive
// tests, through scripts/cluster/rabbitmq.sh: a three-node cluster
// bbq1..3@localhost (AMQP 5681-5683) or a single node such as bbq9 (5689),
// beside the system broker and isolated from it. Each test gets its own
// nodes, stopped by PID and removed when it ends.
package testcluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/33god/bloodbank-go/internal/testenv"
)

// serverBin is what the script runs; Debian's rabbitmq-server installs it.
const serverBin = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// RabbitMQ is a set of private RabbitMQ nodes, clustered when more than one.
type RabbitMQ struct {
	t      testing.TB
	dir    string
	script string
	nodes  []int
}

// StartRabbitMQ starts nodes bbqN@localhost for each N of nodes and joins
// them into one cluster. It skips the test when RabbitMQ is not installed
// (fails with BB_REQUIRE_SERVICES=1), and stops the nodes when it ends.
func StartRabbitMQ(t testing.TB, nodes ...int) *RabbitMQ {
	t.Helper()
	if _, err := os.Stat(serverBin); err != nil {
		if testenv.Required() {
			t.Fatalf("%s not found and BB_REQUIRE_SERVICES=1: install rabbitmq-server", serverBin)
		}
		t.Skipf("%s not found: install rabbitmq-server to run the cluster tests", serverBin)
	}
	for _, n := range nodes {
		for _, port := range []int{5680 + n, 25680 + n} {
			if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
				_ = c.Close()
				t.Fatalf("port %d is taken: a node bbq%d from another run may still be up (stop it by its PID)", port, n)
			}
		}
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "cluster", "rabbitmq.sh")
	dir, err := os.MkdirTemp("", "bbq-rmq-")
	if err != nil {
		t.Fatal(err)
	}
	r := &RabbitMQ{t: t, dir: dir, script: script, nodes: nodes}
	t.Cleanup(func() {
		if out, err := exec.Command(script, "down", dir).CombinedOutput(); err != nil {
			t.Logf("stopping the RabbitMQ nodes: %v\n%s", err, out)
		}
	})
	start := time.Now()
	r.run("up", nodes...)
	t.Logf("RabbitMQ nodes %v up in %s", nodes, time.Since(start).Round(100*time.Millisecond))
	return r
}

func (r *RabbitMQ) run(cmd string, args ...int) string {
	r.t.Helper()
	argv := []string{cmd, r.dir}
	for _, a := range args {
		argv = append(argv, strconv.Itoa(a))
	}
	out, err := exec.Command(r.script, argv...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("rabbitmq.sh %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// URL is the AMQP URL of node n.
func (r *RabbitMQ) URL(n int) string {
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", 5680+n)
}

// URLs lists the URLs of nodes, or of every node when none is given,
// separated by commas as RABBIT_URL takes them.
func (r *RabbitMQ) URLs(nodes ...int) string {
	if len(nodes) == 0 {
		nodes = r.nodes
	}
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = r.URL(n)
	}
	return strings.Join(urls, ",")
}

// Leader returns the number of the node leading the quorum queue.
func (r *RabbitMQ) Leader(queue string) int {
	r.t.Helper()
	out, err := exec.Command(r.script, "leader", r.dir, queue).CombinedOutput()
	if err != nil {
		r.t.Fatalf("no leader for %s: %v\n%s", queue, err, out)
	}
	node := strings.TrimSpace(string(out))
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(node, "bbq"), "@localhost"))
	if err != nil {
		r.t.Fatalf("unexpected leader %q of %s", node, queue)
	}
	return n
}

// PID returns the PID of node n's Erlang VM (beam).
func (r *RabbitMQ) PID(n int) int {
	r.t.Helper()
	pid, err := strconv.Atoi(r.run("pid", n))
	if err != nil {
		r.t.Fatalf("PID of bbq%d: %v", n, err)
	}
	return pid
}

// Kill sends SIGKILL to node n: the node is gone at once, as in a crash.
func (r *RabbitMQ) Kill(n int) {
	r.t.Helper()
	if err := syscall.Kill(r.PID(n), syscall.SIGKILL); err != nil {
		r.t.Fatalf("kill bbq%d: %v", n, err)
	}
}

// Stop stops node n gracefully; its data stays for Start.
func (r *RabbitMQ) Stop(n int) { r.t.Helper(); r.run("stop", n) }

// Start starts node n again on its data and waits until it runs.
func (r *RabbitMQ) Start(n int) { r.t.Helper(); r.run("start", n) }
