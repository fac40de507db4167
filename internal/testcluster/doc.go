// Package testcluster starts the project's private clusters for tests: the
// scripts in scripts/cluster run the nodes on loopback, on ports of their
// own, beside the system RabbitMQ and Redis, which they never touch. A test
// calls one function; it gets the URL to connect to, the nodes stop (by
// PID) when the test ends, and a machine without the servers' binaries
// skips the test with a hint, or fails it under BB_REQUIRE_SERVICES=1.
//
// The ports are fixed, so each kind of cluster is started by one test at a
// time across every test process on the machine: the functions wait for a
// file lock before starting it and release it once it is stopped.
package testcluster
