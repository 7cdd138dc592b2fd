package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/role"
)

// rssTarget is the footprint target for one idle `leaderd run` (issue 11:
// 16 MiB for a primary; the standbys are held to it too).
const rssTarget = 16 << 20

// usage is one idle replica's footprint.
type usage struct {
	ID       string
	Role     role.Role
	Mem      mem   // at the end of the idle window
	RSSStart int64 // VmRSS in bytes at the start of the idle window
	CPU      float64
	Window   time.Duration
	CPUTicks int64
}

// footprint measures every replica over one idle window: CPU from
// utime+stime in /proc/<pid>/stat, RSS from /proc/<pid>/status at the end.
// Nothing happens to the cluster meanwhile; a transition during the window
// makes the measurement invalid.
func (b *bench) footprint(ctx context.Context) ([]usage, error) {
	c := b.c
	primary, err := c.waitSteady(ctx, steadyTimeout)
	if err != nil {
		return nil, err
	}
	from, err := c.timelineLen()
	if err != nil {
		return nil, err
	}
	hz := clockTicks()
	fmt.Fprintf(b.log, "bench: footprint: idle for %s (primary %s)\n", b.o.idle, primary.ID)
	rs := make([]*replicas.Replica, 0, len(c.ids))
	start := make([]int64, 0, len(c.ids))
	rssStart := make([]int64, 0, len(c.ids))
	for _, id := range c.ids {
		r := c.reps[id]
		t, err := cpuTicks(r.Pid())
		if err != nil {
			return nil, err
		}
		m, err := memory(r.Pid())
		if err != nil {
			return nil, err
		}
		rs, start, rssStart = append(rs, r), append(start, t), append(rssStart, m.VmRSS)
	}
	began := time.Now()
	if !sleepCtx(ctx, b.o.idle) {
		return nil, ctx.Err()
	}
	var out []usage
	for i, r := range rs {
		t, err := cpuTicks(r.Pid())
		if err != nil {
			return nil, err
		}
		window := time.Since(began)
		m, err := memory(r.Pid())
		if err != nil {
			return nil, err
		}
		rl := role.Standby
		if r == primary {
			rl = role.Primary
		}
		ticks := t - start[i]
		out = append(out, usage{
			ID: r.ID, Role: rl, Mem: m, RSSStart: rssStart[i], Window: window, CPUTicks: ticks,
			CPU: 100 * float64(ticks) / float64(hz) / window.Seconds(),
		})
	}
	if n, err := c.timelineLen(); err != nil {
		return nil, err
	} else if n != from {
		return nil, fmt.Errorf("the roles changed during the idle window (%d hook events)", n-from)
	}
	if p, err := c.waitSteady(ctx, 5*time.Second); err != nil {
		return nil, err
	} else if p != primary {
		return nil, fmt.Errorf("primary changed during the idle window: %s, then %s", primary.ID, p.ID)
	}
	for _, u := range out {
		fmt.Fprintf(b.log, "bench: footprint: %s (%s) VmRSS %s (%s at the window's start; anon %s, file %s), VmHWM %s, CPU %.2f%% of one core\n",
			u.ID, u.Role, mib(u.Mem.VmRSS), mib(u.RSSStart), mib(u.Mem.RssAnon), mib(u.Mem.RssFile), mib(u.Mem.VmHWM), u.CPU)
	}
	return out, nil
}

// cpuTicks is utime+stime of pid in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces, so parse after the
	// last ')'. There f[0] is field 3 (state); utime and stime are fields
	// 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return utime + stime, nil
}

// mem is what /proc/<pid>/status says of a process's memory, in bytes.
// VmRSS = RssAnon (heap, stacks) + RssFile (mapped binary and libraries)
// + RssShmem.
type mem struct {
	VmRSS, VmHWM, RssAnon, RssFile int64
}

// memory reads VmRSS, VmHWM (peak RSS), RssAnon and RssFile of pid.
func memory(pid int) (mem, error) {
	var m mem
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	fields := map[string]*int64{"VmRSS": &m.VmRSS, "VmHWM": &m.VmHWM, "RssAnon": &m.RssAnon, "RssFile": &m.RssFile}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		dst := fields[k]
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("/proc/%d/status: %s: unexpected %q", pid, k, v)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
		*dst = n << 10
	}
	if m.VmRSS == 0 {
		return m, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return m, nil
}

// clockTicks is USER_HZ, the unit of utime and stime: getconf CLK_TCK, or
// 100, its value on every mainstream Linux architecture.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
