package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestMissingSamples_namesEveryMetricThatCannotBeJudged(t *testing.T) {
	ok := &metric{name: "publish_confirmed_1", target: "≥ 0.85", base: []float64{100, 110}, proj: []float64{95, 99}}
	noProject := &metric{name: "consume_full_stack", target: "≥ 0.70", base: []float64{100}}
	zeroLatency := &metric{name: "latency_p99_ms", target: "≤ 1.5", base: []float64{0.5}, proj: []float64{0}}
	nan := &metric{name: "command_path", target: "≥ 0.60", base: []float64{math.NaN()}, proj: []float64{1}}
	inf := &metric{name: "peer_watermill_consume", target: "≥ 1.0", base: []float64{1}, proj: []float64{math.Inf(1)}}

	bad := missingSamples([]*metric{ok, noProject, zeroLatency, nan, inf})
	if len(bad) != 4 {
		t.Fatalf("missingSamples = %q, want the four broken metrics", bad)
	}
	for i, name := range []string{"consume_full_stack", "latency_p99_ms", "command_path", "peer_watermill_consume"} {
		if !strings.HasPrefix(bad[i], name+":") {
			t.Errorf("problem %d = %q, want it to name %s", i, bad[i], name)
		}
	}
	for _, m := range []*metric{noProject, zeroLatency, nan, inf} {
		if v := m.verdict(); v != "NO SAMPLES" {
			t.Errorf("%s: verdict %q, want NO SAMPLES", m.name, v)
		}
	}
}

// A latency run without samples used to give a ratio of 0, which is "≤ 1.5".
func TestMetricMet_aZeroRatioMeetsNoUpperBound(t *testing.T) {
	m := &metric{name: "latency_p99_ms", target: "≤ 1.5", base: []float64{0}, proj: []float64{0}}
	if met, ok := m.met(); !ok || met {
		t.Errorf("met() = %v, %v; want false, true", met, ok)
	}
}

func TestMetricMet(t *testing.T) {
	tests := []struct {
		target     string
		base, proj float64
		met, ok    bool
	}{
		{"≥ 0.85", 100, 86, true, true},
		{"≥ 0.85", 100, 84, false, true},
		{"≤ 2.0", 6.2, 12.4, true, true},
		{"≤ 2.0", 6.2, 19.3, false, true},
		{"(info)", 1, 1, false, false},
	}
	for _, tc := range tests {
		m := &metric{target: tc.target, base: []float64{tc.base}, proj: []float64{tc.proj}}
		if met, ok := m.met(); met != tc.met || ok != tc.ok {
			t.Errorf("%s with %v/%v: met() = %v, %v; want %v, %v", tc.target, tc.proj, tc.base, met, ok, tc.met, tc.ok)
		}
	}
}

func TestRSSVerdict(t *testing.T) {
	tests := []struct {
		name     string
		duration time.Duration
		slope    float64
		maxMiB   float64
		flat     bool
		says     string
	}{
		{"flat", 3 * time.Minute, 0.4, 44, true, "flat"},
		{"the slope issue 19 saw", 3 * time.Minute, 3.5, 44, false, "NOT FLAT (slope +3.50"},
		{"a slope of exactly 1", 3 * time.Minute, 1, 44, false, "NOT FLAT"},
		{"too big", 3 * time.Minute, 0, 100, false, "max 100.0 MiB is not under 100"},
		{"a quick run", 10 * time.Second, 0, 40, false, "not a verdict"},
		{"a quick run that grows", time.Minute, 5, 40, false, "not a verdict"},
		{"no slope", 3 * time.Minute, math.NaN(), 40, false, "NOT FLAT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			says, flat := rssVerdict(tc.duration, tc.slope, tc.maxMiB)
			if flat != tc.flat || !strings.Contains(says, tc.says) {
				t.Errorf("rssVerdict = %q, %v; want %v and %q in it", says, flat, tc.flat, tc.says)
			}
		})
	}
}

func TestSummarize_judgesTheLastTwoThirds(t *testing.T) {
	// Three minutes at 0.5 s: warm-up growth in the first third is allowed;
	// 2 MiB a minute after it is not.
	grow := func(perMin float64) *rssResult {
		rs := &rssResult{duration: 3 * time.Minute}
		for at := time.Duration(0); at <= 3*time.Minute; at += sampleEvery {
			mib := 30 + perMin*at.Minutes()
			if at < time.Minute {
				mib = 10 + 20*at.Minutes() // warm-up
			}
			rs.samples = append(rs.samples, rssSample{at: at, kib: int64(mib * 1024)})
		}
		rs.summarize()
		return rs
	}
	if rs := grow(0); !rs.flat {
		t.Errorf("steady after warm-up: %s (slope %.2f)", rs.verdict, rs.slope)
	}
	if rs := grow(2); rs.flat || math.Abs(rs.slope-2) > 0.05 {
		t.Errorf("2 MiB/min: %s (slope %.2f)", rs.verdict, rs.slope)
	}
}
