// Package testenv finds the real RabbitMQ and Redis that integration tests
// talk to. A test that needs one calls RabbitURL or Redis: when the server is
// not reachable the test is skipped with a hint, unless BB_REQUIRE_SERVICES=1
// (CI sets it), in which case the test fails, because in CI a missing server
// is a broken build, never a silent skip.
package testenv

import (
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// DefaultRabbitURL is the broker the tests use unless BB_TEST_RABBIT_URL is set.
const DefaultRabbitURL = "amqp://guest:guest@127.0.0.1:5672/"

// DefaultRedisAddr is the Redis the tests use unless BB_TEST_REDIS_ADDR is set.
const DefaultRedisAddr = "127.0.0.1:6379"

// Required reports whether missing services fail tests instead of skipping them.
func Required() bool { return os.Getenv("BB_REQUIRE_SERVICES") == "1" }

// RabbitURL returns the AMQP URL of a reachable RabbitMQ, or skips (fails in CI).
func RabbitURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("BB_TEST_RABBIT_URL")
	if u == "" {
		u = DefaultRabbitURL
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("BB_TEST_RABBIT_URL is not a URL: %v", err)
	}
	host := parsed.Host
	if parsed.Port() == "" {
		host = net.JoinHostPort(parsed.Hostname(), "5672")
	}
	unreachable(t, "RabbitMQ", host, "rabbitmq-server -detached")
	return u
}

// Redis returns the address of a reachable Redis, or skips (fails in CI).
func Redis(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("BB_TEST_REDIS_ADDR")
	if addr == "" {
		addr = DefaultRedisAddr
	}
	unreachable(t, "Redis", addr, `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`)
	return addr
}

func unreachable(t testing.TB, what, addr, start string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		_ = conn.Close()
		return
	}
	if Required() {
		t.Fatalf("%s not reachable at %s and BB_REQUIRE_SERVICES=1: %v (start it with: %s)", what, addr, err, start)
	}
	t.Skipf("%s not reachable at %s: start it with: %s (set BB_REQUIRE_SERVICES=1 to fail instead)", what, addr, start)
}
