package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/correlation"

	"github.com/33god/bloodbank-go/internal/testenv"
)

// The ports of scripts/cluster/redis-cluster.sh and redis-sentinel.sh.
var (
	// RedisClusterPorts are the three masters of the Redis Cluster.
	RedisClusterPorts = [3]int{7001, 7002, 7003}
	// SentinelPorts are the three Sentinels of the Sentinel group.
	SentinelPorts = [3]int{26391, 26392, 26393}
)

// The servers of the Sentinel group when it starts; after a failover the
// replica is the master.
const (
	SentinelMasterPort  = 6391
	SentinelReplicaPort = 6392
	// SentinelMasterName is the name the Sentinels monitor the master by.
	SentinelMasterName = "bbmaster"
)

// Redis is a private Redis deployment a test started.
type Redis struct {
	// URL is REDIS_URL for it, in the form go-redis (and
	// correlation.Settings) reads: several addr= for a Cluster, master_name=
	// for Sentinel.
	URL    string
	script string
	dir    string
	admin  *redis.Client // of the first node, for the queries of Slot
}

// RedisCluster starts a Redis Cluster of three masters (RedisClusterPorts,
// no replicas, nothing persisted) with every hash slot assigned, and stops
// it when the test ends. It takes about 2 s.
func RedisCluster(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, "redis-cluster.sh")
}

// RedisSentinel starts a master (SentinelMasterPort), its replica and three
// Sentinels watching them with down-after-milliseconds 1000, and stops them
// when the test ends. It returns once the replica is in sync and every
// Sentinel knows the replica and its peers, so a failover can happen; that
// takes about 3 s.
func RedisSentinel(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, "redis-sentinel.sh")
}

func startRedis(t testing.TB, script string) *Redis {
	t.Helper()
	for _, bin := range []string{"bash", "redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			msg := fmt.Sprintf("%s needs %s, which is not on PATH (Debian: apt-get install redis-server)", script, bin)
			if testenv.Required() {
				t.Fatal(msg + " and BB_REQUIRE_SERVICES=1")
			}
			t.Skip(msg)
		}
	}
	path, err := scriptPath(script)
	if err != nil {
		t.Fatal(err)
	}
	lock(t, script)
	dir, err := os.MkdirTemp("", "bb-"+strings.TrimSuffix(script, ".sh")+"-")
	if err != nil {
		t.Fatal(err)
	}
	r := &Redis{script: path, dir: dir}
	// Registered before up: a start that fails half way leaves nothing running.
	t.Cleanup(func() {
		if out, err := r.run(time.Minute, "down", dir); err != nil {
			t.Errorf("%s down: %v\n%s", script, err, out)
		}
	})
	start := time.Now()
	out, err := r.run(time.Minute, "up", dir)
	if err != nil {
		t.Fatalf("%s up: %v\n%s", script, err, out)
	}
	for line := range strings.Lines(out) {
		if u, ok := strings.CutPrefix(strings.TrimSpace(line), "REDIS_URL="); ok {
			r.URL = u
		}
	}
	if r.URL == "" {
		t.Fatalf("%s up printed no REDIS_URL:\n%s", script, out)
	}
	if script == "redis-cluster.sh" {
		r.admin = r.Node(t, RedisClusterPorts[0])
	}
	t.Logf("%s up in %s: REDIS_URL=%s", script, time.Since(start).Round(10*time.Millisecond), r.URL)
	return r
}

// PID returns the process id of the server or Sentinel on port.
func (r *Redis) PID(t testing.TB, port int) int {
	t.Helper()
	out, err := r.run(10*time.Second, "pid", r.dir, strconv.Itoa(port))
	if err != nil {
		t.Fatalf("no process on port %d: %v\n%s", port, err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("pid of port %d: %q is not a number", port, out)
	}
	return pid
}

// Kill sends SIGKILL to the server on port: it dies without a word to its
// clients, replicas or Sentinels, as a crashed machine does.
func (r *Redis) Kill(t testing.TB, port int) {
	t.Helper()
	if err := syscall.Kill(r.PID(t, port), syscall.SIGKILL); err != nil {
		t.Fatalf("cannot kill the server on port %d: %v", port, err)
	}
}

// Master returns the port of the master the Sentinels report (Sentinel
// group only).
func (r *Redis) Master(t testing.TB) int {
	t.Helper()
	out, err := r.run(10*time.Second, "master", r.dir)
	if err != nil {
		t.Fatalf("cannot ask the Sentinels for the master: %v\n%s", err, out)
	}
	port, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("the Sentinels report master port %q", out)
	}
	return port
}

// Client returns a client of the whole setup, built from its REDIS_URL as
// the services build theirs (a ClusterClient or a Sentinel failover
// client), closed when the test ends.
func (r *Redis) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	c, err := correlation.NewUniversalClient(correlation.Settings{URL: r.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Node returns a plain client of the one server on port, closed when the
// test ends: it follows no redirect, so it shows what that node holds.
func (r *Redis) Node(t testing.TB, port int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Slot returns the hash slot of key, as CLUSTER KEYSLOT computes it, and
// the port of the master serving that slot (Redis Cluster only).
func (r *Redis) Slot(t testing.TB, key string) (slot, port int) {
	t.Helper()
	if r.admin == nil {
		t.Fatal("Slot needs a Redis Cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := r.admin.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	}
	shards, err := r.admin.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER SHARDS: %v", err)
	}
	for _, sh := range shards {
		for _, rg := range sh.Slots {
			if rg.Start <= s && s <= rg.End {
				for _, n := range sh.Nodes {
					if n.Role == "master" {
						return int(s), int(n.Port)
					}
				}
			}
		}
	}
	t.Fatalf("no master serves slot %d", s)
	return 0, 0
}

// SpreadIDs returns one random id per master, in the order of
// RedisClusterPorts: key(ids[i]) is in a slot that master i serves.
func (r *Redis) SpreadIDs(t testing.TB, key func(uuid.UUID) string) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, len(RedisClusterPorts))
	found := 0
	for range 1000 {
		id := uuid.New()
		_, port := r.Slot(t, key(id))
		for i, p := range RedisClusterPorts {
			if p == port && ids[i] == uuid.Nil {
				ids[i] = id
				found++
			}
		}
		if found == len(ids) {
			return ids
		}
	}
	t.Fatal("1000 random ids did not reach every master: are the slots assigned?")
	return nil
}

// run runs the script with args, bounded by timeout, and returns what it
// printed on stdout and stderr.
func (r *Redis) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{r.script}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The servers daemonize and close what they inherited; should one keep
	// the pipe, the script's end must still end the wait.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.String(), err
}

// scriptPath finds scripts/cluster/name in the module root above the
// working directory (a test runs in its package's directory).
func scriptPath(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "cluster", name), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find scripts/cluster: no go.mod above the working directory")
		}
		dir = parent
	}
}

// lock holds a file lock named after script until the test's cleanups end,
// so that two test processes never start nodes on the same ports.
func lock(t testing.TB, script string) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "bloodbank-testcluster-"+strings.TrimSuffix(script, ".sh")+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			t.Fatalf("cannot lock %s (another test process runs %s): %v", path, script, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Registered first, so it runs after the cleanup that stops the nodes.
	t.Cleanup(func() { _ = f.Close() })
}
