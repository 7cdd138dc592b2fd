package hooks

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// groupAliveBefore is the reference: every stat file read, as groupAlive
// did before its getpgid filter (76a1681).
func groupAliveBefore(pgid, except int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == except {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			return true
		}
	}
	return false
}

// On every process group of this host (and with its
// leader excepted, as the runner asks), the getpgid-filtered scan answers
// as the full scan did. A disagreement is retried once: processes come and
// go between the two scans.
func TestGroupAliveAgreesWithAFullScan(t *testing.T) {
	startInGroup(t, 0, "sleep", "300")
	member := startInGroup(t, 0, "sleep", "300")
	if _, err := waitExit(startInGroup(t, member.Process.Pid, "true")); err != nil { // a zombie member
		t.Fatal(err)
	}
	names, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	groups := map[int]bool{}
	for _, e := range names {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if g, err := syscall.Getpgid(pid); err == nil {
				groups[g] = true
			}
		}
	}
	groups[1<<22-1] = true // no such group
	checked := 0
	for g := range groups {
		for _, except := range []int{0, g} {
			for try := 0; ; try++ {
				now, before := groupAlive(g, except), groupAliveBefore(g, except)
				if now == before {
					break
				}
				if try == 1 {
					t.Errorf("groupAlive(%d, %d) = %v, before %v", g, except, now, before)
					break
				}
			}
			checked++
		}
	}
	t.Logf("%d groups, %d questions", len(groups), checked)
}

// BenchmarkGroupAliveFullScan is BenchmarkGroupAlive's reference: the same
// question answered by reading every stat file, for a ratio in one run.
func BenchmarkGroupAliveFullScan(b *testing.B) {
	pgid := startInGroup(b, 0, "sleep", "300").Process.Pid
	b.ReportAllocs()
	for b.Loop() {
		groupAliveBefore(pgid, pgid)
	}
}
