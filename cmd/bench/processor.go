package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/domains/agent/thread"
	"github.com/33god/bloodbank-go/middleware"
)

// command_path runs the service people deploy: cmd/command-processor,
// built into a temporary directory and started as a child process with its
// default settings and middleware stack, logging as deployed (JSON at the
// info level, to a file), its HTTP gateway on a free port. Only what the
// run needs is set: the broker (through the metric's ack tap), the Redis of
// this process's settings, an exchange and a service name of this run, the
// prefetch of the raw baseline (-prefetch, as every consumer of the bench)
// and a one-day TTL on the correlation keys, which the run deletes anyway.
//
// Each round prefills the service queue, starts the processor, times it
// from its basic.consume to its n-th ack, then stops it with SIGTERM and
// checks that it drained: exit status 0, the queue empty, and its last log
// line counting n commands executed and none failed.

const processorPkg = "github.com/33god/bloodbank-go/cmd/command-processor"

// processor is the built binary and the names of its runs.
type processor struct {
	e       *env
	dir     string // the binary and its log
	bin     string
	log     string
	service string // SERVICE_NAME
	prompts []sentPrompt
}

// sentPrompt is a prefilled prompt and its parent, the root of its chain.
type sentPrompt struct{ id, root uuid.UUID }

// processorService is the child's SERVICE_NAME: its queue and its dedup
// keys are this run's.
func processorService(runID string) string { return "bbbench_" + runID }

func (e *env) buildProcessor(ctx context.Context) (*processor, error) {
	dir, err := os.MkdirTemp("", "bbbench-processor-")
	if err != nil {
		return nil, err
	}
	p := &processor{e: e, dir: dir, bin: filepath.Join(dir, "command-processor"), log: filepath.Join(dir, "command-processor.log"),
		service: processorService(e.runID)}
	out, err := exec.CommandContext(ctx, "go", "build", "-o", p.bin, processorPkg).CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot build %s (run the bench inside the module): %v\n%s", processorPkg, err, out)
	}
	return p, nil
}

// close deletes the binary, the log, and the Redis keys the processor
// wrote: its dedup marks (under its own service name), the links of each
// prompt and its response, and per chain root the cost totals and the
// runaway guard's descendant count. All but the dedup marks are under the
// processor's default prefixes, as a deployed one's are, and live a day:
// left behind, every round would leave two keys per prompt for a day.
func (p *processor) close(ctx context.Context) error {
	defer func() { _ = os.RemoveAll(p.dir) }()
	r := p.e.redis
	var errs []error
	errs = append(errs, deleteKeys(ctx, r, middleware.DefaultDedupKeyPrefix+p.service+":*"))
	// One key per UNLINK: on a Redis Cluster the keys are in different slots.
	pipe := r.Pipeline()
	for _, sp := range p.prompts {
		pipe.Unlink(ctx, correlation.DefaultKeyPrefix+"reverse:"+sp.id.String())
		pipe.Unlink(ctx, correlation.DefaultKeyPrefix+"forward:"+cqrs.SideEffectID(thread.RoutingKeyResponse, sp.id, 0).String())
		pipe.Unlink(ctx, correlation.DefaultKeyPrefix+"cost:"+sp.root.String())
		pipe.Unlink(ctx, middleware.DefaultDescendantsKeyPrefix+sp.root.String())
		if pipe.Len() >= 1000 {
			_, err := pipe.Exec(ctx)
			errs = append(errs, err)
		}
	}
	_, err := pipe.Exec(ctx)
	errs = append(errs, err)
	return errors.Join(errs...)
}

// environ is the child's whole environment: nothing of this process's
// BB_* settings leaks in, only where Redis is and the queue type.
func (p *processor) environ(exchange, rabbitURL, httpPort string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"RABBIT_URL=" + rabbitURL, "EXCHANGE_NAME=" + exchange, "SERVICE_NAME=" + p.service,
		"HTTP_HOST=127.0.0.1", "HTTP_PORT=" + httpPort,
		"BB_PREFETCH=" + strconv.Itoa(p.e.o.prefetch), "CORRELATION_TTL_DAYS=1"}
	if p.e.o.consumers > 0 {
		env = append(env, "BB_CONSUMERS="+strconv.Itoa(p.e.o.consumers))
	}
	if p.e.o.pubChannels > 0 {
		env = append(env, "BB_PUBLISHER_CHANNELS="+strconv.Itoa(p.e.o.pubChannels))
	}
	// BENCH_CHILD_ENV adds settings to the child only, for an A/B run of one
	// part of its stack (BENCH_CHILD_ENV='BB_MAX_DEPTH=0 BB_MAX_REPEATS=0').
	env = append(env, strings.Fields(os.Getenv("BENCH_CHILD_ENV"))...)
	for _, kv := range os.Environ() {
		// -cluster sets BB_QUEUE_TYPE: the child must declare its queue as
		// the bench prefilled it.
		if strings.HasPrefix(kv, "REDIS_") || strings.HasPrefix(kv, "BB_QUEUE_TYPE=") {
			env = append(env, kv)
		}
	}
	return env
}

// prefill puts n prompts in the service queue, remembering their ids for
// close.
func (p *processor) prefill(ctx context.Context, conn *amqp091.Connection, exchange, queue string, n int) error {
	if err := p.e.purge(queue); err != nil {
		return err
	}
	_, err := rawPublishPipelined(ctx, conn, exchange, thread.RoutingKeyPrompt, 256, func() amqp091.Publishing {
		body, id, root := p.e.tmpl.promptBodyOf()
		p.prompts = append(p.prompts, sentPrompt{id: id, root: root})
		pub := rawPublishing(body)
		pub.MessageId = id.String()
		return pub
	}, func(sent int) bool { return sent >= n })
	if err != nil {
		return fmt.Errorf("cannot prefill %s: %w", queue, err)
	}
	return p.e.waitReady(ctx, queue, n)
}

// run is one round: start the processor on the prefilled queue, time n
// acks through tap, stop it and check that it drained.
func (p *processor) run(ctx context.Context, tap *ackTap, exchange, queue string, n int) (float64, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	tap.reset()
	cmd := exec.Command(p.bin)
	cmd.Dir = p.dir // no .env there
	cmd.Env = p.environ(exchange, tap.url(p.e.rabbitURL), port)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	kill := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	if err := waitHTTPReady(ctx, "http://127.0.0.1:"+port+"/readyz", exited, 30*time.Second); err != nil {
		kill()
		return 0, fmt.Errorf("command-processor: %w%s", err, p.logTail())
	}
	rate, err := tap.rate(ctx, n, 2*time.Minute)
	if err != nil {
		kill()
		return 0, fmt.Errorf("command-processor: %w%s", err, p.logTail())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		kill()
		return 0, err
	}
	select {
	case <-exited:
		if waitErr != nil {
			return 0, fmt.Errorf("command-processor after SIGTERM: %v%s", waitErr, p.logTail())
		}
	case <-time.After(time.Minute):
		kill()
		return 0, fmt.Errorf("command-processor did not exit within a minute of SIGTERM%s", p.logTail())
	}
	if err := p.checkDrained(queue, n); err != nil {
		return 0, fmt.Errorf("command-processor did not drain: %w%s", err, p.logTail())
	}
	return rate, nil
}

// checkDrained reads the queue and the processor's last log line.
func (p *processor) checkDrained(queue string, n int) error {
	var left int
	if err := p.e.withChannel(func(ch *amqp091.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		left = q.Messages
		return err
	}); err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("%d commands left in %s", left, queue)
	}
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err
	}
	return checkStopped(b, n)
}

// checkStopped reads the processor's "command-processor stopped" line in
// its JSON log: n commands executed, none failed or parked.
func checkStopped(log []byte, n int) error {
	type counts struct {
		Msg      string `json:"msg"`
		Executed *int   `json:"executed"`
		Failed   int    `json:"failed"`
		Parked   int    `json:"parked"`
	}
	var stopped *counts
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line counts
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "command-processor stopped" {
			stopped = &line
		}
	}
	switch {
	case stopped == nil || stopped.Executed == nil:
		return errors.New(`no "command-processor stopped" line with its counts`)
	case *stopped.Executed != n:
		return fmt.Errorf("executed %d commands, want %d", *stopped.Executed, n)
	case stopped.Failed != 0 || stopped.Parked != 0:
		return fmt.Errorf("%d commands failed, %d parked", stopped.Failed, stopped.Parked)
	}
	return nil
}

// logTail is the end of the processor's log, for an error.
func (p *processor) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "\nlast lines of " + p.log + ":\n" + strings.Join(lines[max(0, len(lines)-5):], "\n")
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// waitHTTPReady polls url until it answers 200, the process exits, or the
// timeout passes.
func waitHTTPReady(ctx context.Context, url string, exited <-chan struct{}, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s", timeout)
		}
	}
}
