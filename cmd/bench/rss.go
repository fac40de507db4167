package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// The memory run: the project path alone in a child process (this binary
// with -child rss), so that the resident set measured is the project's
// only. The child runs a publisher (PublishAsync at -rss-rate) and the
// consume_full_stack service on one queue for -rss-duration, and writes a
// line per half second:
//
//	rss <ms since start> <VmRSS KiB> <handled> <published>
//
// then "end". The parent turns them into an rssResult.

const sampleEvery = 500 * time.Millisecond

func (e *env) runRSS(ctx context.Context) (*rssResult, error) {
	t := e.topo()
	x, q := t.rss, t.rssQueue
	if err := e.declare(x, q, thread.RoutingKeyPrompt); err != nil {
		return nil, err
	}
	e.trackService(x, q)
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-child", "rss", "-run-id", e.runID, "-exchange", x,
		"-rss-rate", strconv.Itoa(e.o.rssRate), "-rss-duration", e.o.rssDuration.String(),
		"-prefetch", strconv.Itoa(e.o.prefetch), "-consumers", strconv.Itoa(e.o.consumers),
		"-publisher-channels", strconv.Itoa(e.o.pubChannels), "-size", strconv.Itoa(e.o.size)}
	if e.o.verbose {
		args = append(args, "-v")
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = os.Environ()
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	rs := &rssResult{duration: e.o.rssDuration, rate: e.o.rssRate}
	ended := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 5 && f[0] == "rss":
			var v [4]int64
			for i := range v {
				v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
			}
			rs.samples = append(rs.samples, rssSample{at: time.Duration(v[0]) * time.Millisecond, kib: v[1], handled: v[2], published: v[3]})
		case len(f) >= 2 && f[0] == "idle":
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			rs.idleMiB = float64(kib) / 1024
		case len(f) == 1 && f[0] == "end":
			ended = true
		}
	}
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if werr != nil || !ended {
		return nil, fmt.Errorf("child failed: %v (ended=%v)", werr, ended)
	}
	if len(rs.samples) < 3 {
		return nil, errors.New("child reported too few samples")
	}
	rs.summarize()
	return rs, nil
}

// summarize computes the max and the verdict (rssVerdict): the load's
// first third is warm-up; the slope is a least-squares fit over the other
// two, whose maxima are reported too.
func (rs *rssResult) summarize() {
	last := rs.samples[len(rs.samples)-1]
	rs.handled, rs.published = last.handled, last.published
	for _, s := range rs.samples {
		rs.maxBacklog = max(rs.maxBacklog, s.published-s.handled)
	}
	end := last.at
	var xs, ys []float64
	for _, s := range rs.samples {
		mib := float64(s.kib) / 1024
		rs.maxMiB = max(rs.maxMiB, mib)
		switch {
		case s.at < end/3:
		case s.at < 2*end/3:
			rs.midMaxMiB = max(rs.midMaxMiB, mib)
			xs, ys = append(xs, s.at.Minutes()), append(ys, mib)
		default:
			rs.lastMaxMiB = max(rs.lastMaxMiB, mib)
			xs, ys = append(xs, s.at.Minutes()), append(ys, mib)
		}
	}
	rs.slope = slope(xs, ys)
	rs.verdict, rs.flat = rssVerdict(rs.duration, rs.slope, rs.maxMiB)
}

func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// vmRSS reads the resident set of this process from /proc/self/status.
func vmRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(rest))
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}

// runChild is the child's side of the memory run.
func runChild(ctx context.Context, o options, out io.Writer, logger *slog.Logger) error {
	if o.child != "rss" || o.runID == "" || o.childEx == "" {
		return errors.New("-child rss needs -run-id and -exchange")
	}
	e, err := newEnv(ctx, o, o.runID, logger)
	if err != nil {
		return err
	}
	defer func() {
		_ = e.admin.Close()
		_ = e.redis.Close()
	}()
	st, err := e.openStack(ctx, o.childEx, false)
	if err != nil {
		return err
	}
	defer st.close()
	svc, err := st.newService(ctx, "rss", true)
	if err != nil {
		return err
	}
	var handled atomic.Int64
	if err := bus.Handle(svc, "bench_rss", thread.RoutingKeyPrompt, func(ctx context.Context, ev bus.Event[thread.Prompt]) error {
		handled.Add(1)
		return nil
	}); err != nil {
		return err
	}
	stop, err := runService(ctx, svc)
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()
	conn, pub, err := e.newProjectPublisher(ctx, o.childEx)
	if err != nil {
		return err
	}
	defer func() { _ = pub.Close(); _ = conn.Close() }()

	if kib, err := vmRSS(); err == nil {
		fmt.Fprintf(out, "idle %d\n", kib)
	}
	var published atomic.Int64
	start := time.Now()
	sampled := make(chan struct{})
	sctx, cancelSampler := context.WithCancel(ctx)
	sample := func() {
		if kib, err := vmRSS(); err == nil {
			fmt.Fprintf(out, "rss %d %d %d %d\n", time.Since(start).Milliseconds(), kib, handled.Load(), published.Load())
		}
	}
	go func() {
		defer close(sampled)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				sample()
			}
		}
	}()
	total := int(float64(o.rssRate) * o.rssDuration.Seconds())
	perr := e.publishPaced(ctx, pub, o.rssRate, total, false, &published)
	// Let the consumer finish what was published, then take a last sample.
	deadline := time.Now().Add(30 * time.Second)
	for perr == nil && handled.Load() < published.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	cancelSampler()
	<-sampled
	sample()
	if perr != nil {
		return perr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintln(out, "end")
	return nil
}
