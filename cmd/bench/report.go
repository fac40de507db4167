package main

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"text/tabwriter"
	"time"
)

// latencies collects samples from any number of goroutines.
type latencies struct {
	mu sync.Mutex
	v  []time.Duration
}

func newLatencies(n int) *latencies { return &latencies{v: make([]time.Duration, 0, n)} }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.v = append(l.v, d)
	l.mu.Unlock()
}

func (l *latencies) values() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.v)
}

// percentile is the nearest-rank percentile p (0-100) of v.
func percentile(v []time.Duration, p float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// metric is one row of the table: a value per round for the baseline and
// for the project.
type metric struct {
	name   string
	unit   string
	target string // the target, as text, for the table
	line   bool   // printed as a "bench" line at the end
	base   []float64
	proj   []float64
}

func (m *metric) add(base, proj float64) {
	m.base = append(m.base, base)
	m.proj = append(m.proj, proj)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (m *metric) ratio() float64 {
	b := median(m.base)
	if b == 0 {
		return 0
	}
	return median(m.proj) / b
}

// rssResult is the memory run.
type rssResult struct {
	samples    []rssSample
	duration   time.Duration
	rate       int
	maxMiB     float64
	idleMiB    float64 // before the load started
	midMaxMiB  float64 // max over the middle third of the load
	lastMaxMiB float64 // max over the last third
	slope      float64 // MiB per minute, least squares over the last two thirds
	verdict    string  // rssVerdict's
	flat       bool
	handled    int64
	published  int64
	maxBacklog int64 // most messages published and not yet handled, in a sample
}

type rssSample struct {
	at        time.Duration
	kib       int64
	handled   int64
	published int64
}

type report struct {
	metrics []*metric
	info    []string
	skipped []string // metrics that cannot run here, and why
	rss     *rssResult
}

func (r *report) metric(name string) *metric {
	for _, m := range r.metrics {
		if m.name == name {
			return m
		}
	}
	return nil
}

func format(v float64, unit string) string {
	switch unit {
	case "msg/s":
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func span(v []float64, unit string) string {
	if len(v) == 0 {
		return "-"
	}
	return format(slices.Min(v), unit) + "–" + format(slices.Max(v), unit)
}

func (r *report) print(w io.Writer) {
	if len(r.metrics) > 0 {
		r.printTable(w)
	}
	if rs := r.rss; rs != nil {
		fmt.Fprintf(w, "\nrss: project path at %d msg/s for %s in a child process: max %.1f MiB (idle %.1f), middle-third max %.1f, last-third max %.1f, slope %+.2f MiB/min: %s; handled %d of %d published, at most %d behind\n",
			rs.rate, rs.duration, rs.maxMiB, rs.idleMiB, rs.midMaxMiB, rs.lastMaxMiB, rs.slope, rs.verdict, rs.handled, rs.published, rs.maxBacklog)
	}
	if len(r.info) > 0 {
		fmt.Fprintln(w)
		for _, s := range r.info {
			fmt.Fprintln(w, s)
		}
	}
	fmt.Fprintln(w)
	for _, m := range r.metrics {
		if m.line {
			fmt.Fprintf(w, "bench %s project=%s baseline=%s ratio=%.3f\n", m.name,
				format(median(m.proj), m.unit), format(median(m.base), m.unit), m.ratio())
		}
	}
	if rs := r.rss; rs != nil {
		fmt.Fprintf(w, "bench rss_mib project=%.1f baseline=100 ratio=%.3f slope=%+.2f verdict=%s\n", rs.maxMiB, rs.maxMiB/100, rs.slope, rssWord(rs.duration, rs.flat))
	}
	for _, s := range r.skipped {
		fmt.Fprintf(w, "bench %s\n", s)
	}
}

func (r *report) printTable(w io.Writer) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tunit\tbaseline median\t(min–max)\tproject median\t(min–max)\tratio\ttarget\tverdict\t")
	for _, m := range r.metrics {
		fmt.Fprintf(tw, "%s\t%s\t%s\t(%s)\t%s\t(%s)\t%.3f\t%s\t%s\t\n", m.name, m.unit,
			format(median(m.base), m.unit), span(m.base, m.unit),
			format(median(m.proj), m.unit), span(m.proj, m.unit), m.ratio(), m.target, m.verdict())
	}
	_ = tw.Flush()
}

// verdict is the table's last column: whether the ratio meets the target.
func (m *metric) verdict() string {
	if m.sampleProblem() != "" {
		return "NO SAMPLES"
	}
	met, ok := m.met()
	switch {
	case !ok:
		return "-"
	case met:
		return "met"
	}
	return "MISSED"
}

func roundLine(name string, round int, projectFirst bool, base, proj float64, unit string) string {
	order := "baseline first"
	if projectFirst {
		order = "project first"
	}
	return fmt.Sprintf("round %d %-22s baseline=%-8s project=%-8s %s (%s)", round, name,
		format(base, unit), format(proj, unit), unit, order)
}
