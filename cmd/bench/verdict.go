package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The verdicts: a broken measurement must fail the run, never pass for a
// good number. A metric without samples on either side, or with a sample
// that is zero, negative or not a number, fails the whole run by name; a
// ratio is only computed between two real medians.

// missingSamples names every metric that lacks a usable sample.
func missingSamples(ms []*metric) []string {
	var bad []string
	for _, m := range ms {
		if why := m.sampleProblem(); why != "" {
			bad = append(bad, m.name+": "+why)
		}
	}
	return bad
}

func (m *metric) sampleProblem() string {
	check := func(side string, v []float64) string {
		if len(v) == 0 {
			return "no " + side + " samples"
		}
		for i, x := range v {
			if !(x > 0) || math.IsInf(x, 0) {
				return fmt.Sprintf("%s sample %d is %v", side, i+1, x)
			}
		}
		return ""
	}
	if s := check("baseline", m.base); s != "" {
		return s
	}
	return check("project", m.proj)
}

// met says whether the ratio meets the metric's target ("≥ 0.85",
// "≤ 1.5"); ok is false for a metric that has no target.
func (m *metric) met() (met, ok bool) {
	op, num, found := strings.Cut(m.target, " ")
	want, err := strconv.ParseFloat(num, 64)
	if !found || err != nil {
		return false, false
	}
	r := m.ratio()
	switch op {
	case "≥":
		return r >= want, true
	case "≤":
		return r > 0 && r <= want, true
	}
	return false, false
}

// The memory rule of issue 19: memory is flat when, over a run of at least
// rssVerdictRun, the slope stays under rssMaxSlope and the maximum under
// rssMaxMiB. A shorter run (-quick) is reported but gives no verdict.
const (
	rssVerdictRun = 3 * time.Minute
	rssMaxSlope   = 1.0 // MiB per minute
	rssMaxMiB     = 100.0
)

// rssWord is the verdict in one word, for the bench line.
func rssWord(duration time.Duration, flat bool) string {
	switch {
	case duration < rssVerdictRun:
		return "none"
	case flat:
		return "flat"
	}
	return "NOT_FLAT"
}

// rssVerdict is "flat", or what broke the rule, or that the run was too
// short to say.
func rssVerdict(duration time.Duration, slope, maxMiB float64) (verdict string, flat bool) {
	var broke []string
	if !(slope < rssMaxSlope) {
		broke = append(broke, fmt.Sprintf("slope %+.2f MiB/min is not under %.0f", slope, rssMaxSlope))
	}
	if !(maxMiB < rssMaxMiB) {
		broke = append(broke, fmt.Sprintf("max %.1f MiB is not under %.0f", maxMiB, rssMaxMiB))
	}
	switch {
	case duration < rssVerdictRun:
		return fmt.Sprintf("not a verdict (a %s run; the rule needs %s)", duration, rssVerdictRun), false
	case len(broke) > 0:
		return "NOT FLAT (" + strings.Join(broke, "; ") + ")", false
	}
	return "flat", true
}
