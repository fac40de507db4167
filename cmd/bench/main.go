// Command bench measures Bloodbank for Go against the raw clients it is
// built on (amqp091-go and go-redis), side by side, on the configured
// RabbitMQ (RABBIT_URL, default amqp://guest:guest@127.0.0.1:5672/) and
// Redis (REDIS_HOST, REDIS_PORT, ...).
//
// Every metric is measured in interleaved rounds: in each round the raw
// baseline and the project path run one after the other (the order
// alternates from round to round, so a drift of the shared machine hurts
// both alike), and the report gives the median and the min-max of the
// rounds. Ratios compare medians measured in the same run; absolute numbers
// move from machine to machine. Memory (rss_mib) is one run of the project
// path alone, in a child process, so that nothing else shares its heap.
// command_path runs the command-processor binary as deployed, in a child
// process (processor.go); consuming rates end at the last ack the broker
// receives (tap.go); the peers run beside the project (peers.go).
//
// A metric without samples fails the run (exit status 1) and is named;
// memory is flat only by the rule of verdict.go.
//
// Everything the command creates is named bbbench.<random>: exchanges and
// queues are deleted at the end, and on SIGINT or SIGTERM; Redis keys start
// with bbbench:<random>: and are deleted too (they also expire within an
// hour). The command-processor child runs with its defaults: its keys are
// under the default prefixes (its dedup marks under its service name,
// bbbench_<random>), deleted after its rounds, and expire within a day.
//
// The last lines of the output have this form, one per target of issues 8
// and 19:
//
//	bench <name> project=<value> baseline=<value> ratio=<project/baseline>
//
// docs/performance.md explains what each metric measures and its baseline.
//
// Usage:
//
//	go run ./cmd/bench            # the full run
//	go run ./cmd/bench -quick     # short runs; the memory run gives no verdict
//	go run ./cmd/bench -only consume_full_stack -rounds 3 -cpuprofile cpu.out
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	rounds          int
	duration        time.Duration
	messages        int
	inflight        int
	prefetch        int
	consumers       int
	pubChannels     int
	size            int
	latencyRate     int
	latencyDuration time.Duration
	rssRate         int
	rssDuration     time.Duration
	warmup          time.Duration
	quick           bool
	only            string
	cpuProfile      string
	memProfile      string
	verbose         bool
	stack           string
	cleanupRun      string
	cluster         bool

	// child mode: run one project path alone and report on stdout.
	child   string
	runID   string
	childEx string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds per metric")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of one publish run")
	fs.IntVar(&o.messages, "messages", 20000, "messages consumed per consume and command-path run")
	fs.IntVar(&o.inflight, "inflight", 256, "publishes in flight for the one-goroutine publish metric")
	fs.IntVar(&o.prefetch, "prefetch", 256, "QoS prefetch of every consumer, raw and project")
	fs.IntVar(&o.consumers, "consumers", 0, "project: handlers running at once per service (BB_CONSUMERS); 0 = the prefetch")
	fs.IntVar(&o.pubChannels, "publisher-channels", 0, "project: publisher channels (BB_PUBLISHER_CHANNELS); 0 = the setting's default")
	fs.IntVar(&o.size, "size", 1024, "approximate envelope size in bytes")
	fs.IntVar(&o.latencyRate, "latency-rate", 1000, "messages per second of the latency metric")
	fs.DurationVar(&o.latencyDuration, "latency-duration", 5*time.Second, "length of one latency run")
	fs.IntVar(&o.rssRate, "rss-rate", 5000, "messages per second of the memory run")
	fs.DurationVar(&o.rssDuration, "rss-duration", rssVerdictRun, "length of the memory run (a run shorter than 3m gives no verdict)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "publish warm-up before the first round")
	fs.BoolVar(&o.quick, "quick", false, "a run of about a minute: 3 rounds, short runs, a 10 s memory run")
	fs.StringVar(&o.only, "only", "", "comma-separated metrics to run (default all): "+strings.Join(allMetrics, ","))
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process to the file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile of this process to the file at the end")
	fs.BoolVar(&o.verbose, "v", false, "log the project's warnings, and each run with the CPU it used")
	fs.StringVar(&o.stack, "stack", "full", "project middleware, for diagnosis: full, nodedup (full without deduplication) or bare (no middleware)")
	fs.StringVar(&o.cleanupRun, "cleanup", "", "delete the queues, exchanges and Redis keys of the run with this id (one that was interrupted while the broker was away), and exit")
	fs.BoolVar(&o.cluster, "cluster", false, "run on a private three-node RabbitMQ cluster with quorum queues (scripts/cluster/rabbitmq.sh; see cluster.go)")
	fs.StringVar(&o.child, "child", "", "internal: run one path alone (rss)")
	fs.StringVar(&o.runID, "run-id", "", "internal: the run id of the parent")
	fs.StringVar(&o.childEx, "exchange", "", "internal: the exchange of the child run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rounds", func() { o.rounds = 3 })
		def("duration", func() { o.duration = time.Second })
		def("messages", func() { o.messages = 5000 })
		def("latency-duration", func() { o.latencyDuration = 2 * time.Second })
		def("rss-duration", func() { o.rssDuration = 10 * time.Second })
		def("warmup", func() { o.warmup = 300 * time.Millisecond })
	}
	var problems []string
	if o.rounds < 1 {
		problems = append(problems, "-rounds must be at least 1")
	}
	if o.messages < 2 {
		problems = append(problems, "-messages must be at least 2")
	}
	if o.inflight < 1 || o.prefetch < 1 || o.latencyRate < 1 || o.rssRate < 1 {
		problems = append(problems, "-inflight, -prefetch, -latency-rate and -rss-rate must be positive")
	}
	if o.duration <= 0 || o.latencyDuration <= 0 || o.rssDuration <= 0 {
		problems = append(problems, "durations must be positive")
	}
	if o.size < 400 {
		problems = append(problems, "-size must be at least 400 (an envelope's fixed fields)")
	}
	if o.stack != "full" && o.stack != "nodedup" && o.stack != "bare" {
		problems = append(problems, "-stack must be full, nodedup or bare")
	}
	for _, m := range splitList(o.only) {
		if !contains(allMetrics, m) {
			problems = append(problems, fmt.Sprintf("-only: unknown metric %q", m))
		}
	}
	if len(problems) > 0 {
		return o, errors.New(strings.Join(problems, "; "))
	}
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	level := slog.LevelError
	if o.verbose {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if o.child != "" {
		if err := runChild(ctx, o, stdout, logger); err != nil {
			fmt.Fprintln(stderr, "bench child:", err)
			return 1
		}
		return 0
	}

	if o.cleanupRun != "" {
		e, err := newEnv(ctx, o, o.cleanupRun, logger)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		e.trackAll()
		cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		if err := e.cleanup(cctx); err != nil {
			fmt.Fprintln(stderr, "bench: cleanup:", err)
			return 1
		}
		fmt.Fprintf(stdout, "deleted what run %s created\n", o.cleanupRun)
		return 0
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	if o.memProfile != "" {
		defer func() {
			f, err := os.Create(o.memProfile)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				_ = f.Close()
			}
			if err != nil {
				fmt.Fprintln(stderr, "bench: memprofile:", err)
			}
		}()
	}

	if o.cluster {
		stopCluster, err := startCluster(stdout)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer stopCluster()
	}
	e, err := newEnv(ctx, o, "", logger)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	fmt.Fprintf(stdout, "bloodbank bench: run %s, %s, GOMAXPROCS=%d, %d CPUs, RabbitMQ %s, Redis %s\n",
		e.runID, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), e.rabbitVersion, e.redisAddr)
	fmt.Fprintf(stdout, "rounds=%d duration=%s messages=%d inflight=%d prefetch=%d consumers=%d envelope=%dB response=%dB latency=%d/s×%s rss=%d/s×%s\n",
		o.rounds, o.duration, o.messages, o.inflight, o.prefetch, e.cfg.EffectiveConsumers(), e.bodySize, len(e.tmpl.response),
		o.latencyRate, o.latencyDuration, o.rssRate, o.rssDuration)

	rep, runErr := runAll(ctx, e, stdout)
	// Cleanup runs whatever happened, with its own deadline: an interrupted
	// run must not leave queues behind. A full run leaves about 2.7 million
	// Redis keys (the memory run's alone), which take a minute to delete
	// here: 30 seconds left most of them to expire on their own.
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.cleanup(cctx); err != nil {
		fmt.Fprintln(stderr, "bench: cleanup:", err)
	}
	if runErr != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench: interrupted; everything it created was deleted")
			return 130
		}
		fmt.Fprintln(stderr, "bench:", runErr)
		return 1
	}
	rep.print(stdout)
	if bad := missingSamples(rep.metrics); len(bad) > 0 {
		fmt.Fprintln(stderr, "bench: the run failed: a metric without samples cannot be judged:\n  "+strings.Join(bad, "\n  "))
		return 1
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
