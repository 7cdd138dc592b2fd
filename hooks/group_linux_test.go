package hooks

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, stat string
		zombie     bool
		pgrp       int
		ok         bool
	}{
		{"running", "42 (sleep) S 1 40 40 0 -1 4194304 97 0\n", false, 40, true},
		// A first-')' parser would read state Z and group 1 from the comm.
		{"comm with spaces and parens", "42 (a) Z 1 1 (b) R 7 40 40 0\n", false, 40, true},
		{"zombie", "42 (a) b) Z 7 40 40 0\n", true, 40, true},
		{"dead", "42 (x) X 7 40 40 0\n", true, 40, true},
		{"no comm", "42 sleep S 1 40\n", false, 0, false},
		{"too few fields", "42 (sleep) S 1\n", false, 0, false},
		{"empty", "", false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zombie, pgrp, ok := parseStat([]byte(tt.stat))
			if zombie != tt.zombie || pgrp != tt.pgrp || ok != tt.ok {
				t.Errorf("parseStat(%q) = %v, %d, %v; want %v, %d, %v",
					tt.stat, zombie, pgrp, ok, tt.zombie, tt.pgrp, tt.ok)
			}
		})
	}
}

// startInGroup starts argv in process group pgid (0: a new group it leads)
// and kills and reaps it when the test ends.
func startInGroup(tb testing.TB, pgid int, argv ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pgid}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func TestGroupAliveSkipsExcept(t *testing.T) {
	pgid := startInGroup(t, 0, "sleep", "300").Process.Pid
	if groupAlive(pgid, pgid) {
		t.Error("groupAlive(pgid, leader) = true; the excepted leader is its only member")
	}
	if !groupAlive(pgid, 0) {
		t.Error("groupAlive(pgid, 0) = false; its leader is running")
	}
}

func TestGroupAliveSeesOtherMember(t *testing.T) {
	pgid := startInGroup(t, 0, "sleep", "300").Process.Pid
	startInGroup(t, pgid, "sleep", "300")
	if !groupAlive(pgid, pgid) {
		t.Error("groupAlive = false; a second member is running")
	}
}

// A member that has exited but is not reaped counts as gone.
func TestGroupAliveIgnoresZombies(t *testing.T) {
	pgid := startInGroup(t, 0, "sleep", "300").Process.Pid
	member := startInGroup(t, pgid, "true")
	if _, err := waitExit(member); err != nil { // leaves it a zombie
		t.Fatal(err)
	}
	if groupAlive(pgid, pgid) {
		t.Error("groupAlive = true; the other member is a zombie")
	}
}

// The member's comm holds ") Z 1 1 (": only a parse after the last ')'
// reads it as running in its group.
func TestGroupAliveCommWithParens(t *testing.T) {
	script := filepath.Join(t.TempDir(), "a) Z 1 1 (b")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nread -r line\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close() // after the kill and reap below: the script never reads EOF first
	cmd := exec.Command(script)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	pgid := cmd.Process.Pid
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pgid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(stat, []byte(" (a) Z 1 1 (b) ")) {
		t.Fatalf("stat = %q, want the comm \"a) Z 1 1 (b\"", stat)
	}
	if !groupAlive(pgid, 0) {
		t.Error("groupAlive = false; its leader, with a comm of spaces and parens, is running")
	}
}

// The scan after every hook: the group's only member is the shell itself
// (except), so groupAlive looks at every process on the host.
func BenchmarkGroupAlive(b *testing.B) {
	pgid := startInGroup(b, 0, "sleep", "300").Process.Pid
	if groupAlive(pgid, pgid) {
		b.Fatal("groupAlive = true for a group whose only member is excepted")
	}
	b.ReportAllocs()
	for b.Loop() {
		groupAlive(pgid, pgid)
	}
}
