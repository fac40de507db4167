package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// clusterScript starts and stops the private nodes; make runs bench from
// the repository's root.
const clusterScript = "scripts/cluster/rabbitmq.sh"

// startCluster starts three private RabbitMQ nodes, clustered, beside the
// system broker (bbq1..3@localhost, AMQP 5681-5683), and points the run at
// the first with quorum queues: every queue of the run, raw baseline and
// project alike, is replicated on three nodes, so the numbers show what
// replication costs. Both sides connect to bbq1 only, as a client of a
// cluster does. The child processes inherit the settings. stop removes the
// nodes; an interrupted run leaves them to `rabbitmq.sh down` (the script
// prints nothing else, the directory is logged here).
func startCluster(stdout io.Writer) (stop func(), err error) {
	if _, err := os.Stat(clusterScript); err != nil {
		return nil, fmt.Errorf("-cluster needs %s: run from the repository's root (make bench-cluster)", clusterScript)
	}
	dir, err := os.MkdirTemp("", "bbbench-rmq-")
	if err != nil {
		return nil, err
	}
	stop = func() {
		if out, err := exec.Command(clusterScript, "down", dir).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: stopping the cluster: %v\n%s", err, out)
		}
	}
	start := time.Now()
	fmt.Fprintf(stdout, "starting a three-node RabbitMQ cluster in %s\n", dir)
	if out, err := exec.Command(clusterScript, "up", dir, "1", "2", "3").CombinedOutput(); err != nil {
		stop()
		return nil, fmt.Errorf("cannot start the cluster: %v\n%s", err, strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(stdout, "cluster up in %s; RABBIT_URL=amqp://guest:xxxxx@127.0.0.1:5681/ BB_QUEUE_TYPE=quorum\n", time.Since(start).Round(100*time.Millisecond))
	os.Setenv("RABBIT_URL", "amqp://guest:guest@127.0.0.1:5681/")
	os.Setenv("BB_QUEUE_TYPE", "quorum")
	return stop, nil
}
