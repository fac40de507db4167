package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU accounting for -v: how much CPU this process, the broker and Redis
// used during a run, read from /proc, to tell which of them limits a path.
// The broker and Redis are found by their command names; when they run
// elsewhere (or in containers) only this process is reported.

const clockTicks = 100 // USER_HZ on Linux

type cpuProcs struct {
	pids  []int
	names []string
}

func findCPUProcs() cpuProcs {
	p := cpuProcs{pids: []int{os.Getpid()}, names: []string{"bench"}}
	entries, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		var name string
		switch {
		case strings.HasPrefix(comm, "beam"):
			name = "rabbitmq"
		case comm == "redis-server":
			name = "redis"
		default:
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(e)))
		if err == nil {
			p.pids = append(p.pids, pid)
			p.names = append(p.names, name)
		}
	}
	return p
}

type cpuSnap struct {
	at          time.Time
	ticks       []int64
	busy, total int64 // the whole machine, from /proc/stat
}

func (p cpuProcs) snap() cpuSnap {
	s := cpuSnap{at: time.Now(), ticks: make([]int64, len(p.pids))}
	for i, pid := range p.pids {
		s.ticks[i] = procTicks(pid)
	}
	s.busy, s.total = machineTicks()
	return s
}

// machineTicks is the busy and total time of all CPUs from /proc/stat.
func machineTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i := 1; i < len(f); i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		total += v
		if i != 4 && i != 5 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// since reports each process's CPU use since s, in percent of one core,
// and, given the messages handled, this process's CPU time per message.
func (p cpuProcs) since(s cpuSnap, messages float64) string {
	now := p.snap()
	wall := now.at.Sub(s.at).Seconds()
	var parts []string
	if messages > 0 && s.ticks[0] >= 0 {
		parts = append(parts, fmt.Sprintf("bench %.0fµs/msg", float64(now.ticks[0]-s.ticks[0])/clockTicks/messages*1e6))
	}
	for i, name := range p.names {
		if s.ticks[i] < 0 || now.ticks[i] < 0 {
			continue
		}
		pct := float64(now.ticks[i]-s.ticks[i]) / clockTicks / wall * 100
		parts = append(parts, fmt.Sprintf("%s %.0f%%", name, pct))
	}
	if dt := now.total - s.total; dt > 0 {
		parts = append(parts, fmt.Sprintf("machine %.0f%% busy", float64(now.busy-s.busy)/float64(dt)*100))
	}
	return strings.Join(parts, ", ")
}

// procTicks is utime+stime of a process, or -1.
func procTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may hold spaces: fields count from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}
