package hooks

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// groupAlive reports whether the process group pgid has a member, other than
// pid except, that is not a zombie. Zombies count as gone: they have ended,
// and where nobody reaps orphans (leaderd as PID 1 without an init) they
// would otherwise look alive forever.
//
// It runs after every hook, so on the step-down path: getpgid(2), one
// syscall with no file to open, rules out the rest of the host, and only the
// group's members have their stat file read (about 20 times faster than
// reading every stat file: BenchmarkGroupAlive).
func groupAlive(pgid, except int) bool {
	proc, err := os.Open("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	defer proc.Close()
	names, err := proc.Readdirnames(-1)
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid == except {
			continue // not a process, or the shell itself
		}
		if memberAlive(pid, pgid) {
			return true
		}
	}
	return false
}

// memberAlive reports whether pid is in group pgid and not a zombie, which
// getpgid still answers for: the stat file tells.
func memberAlive(pid, pgid int) bool {
	switch g, err := syscall.Getpgid(pid); {
	case err == syscall.ESRCH:
		return false // exited meanwhile
	case err == nil && g != pgid:
		return false
	}
	// A member, or getpgid was refused (an LSM): the stat file decides.
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false // exited meanwhile
	}
	zombie, g, ok := parseStat(stat)
	return ok && !zombie && g == pgid
}

// parseStat parses "pid (comm) state ppid pgrp ..." from a stat file and
// reports whether the process is a zombie (state Z or X) and its group. comm
// may hold anything, spaces and ')' too, so the fields start after its last ')'.
func parseStat(stat []byte) (zombie bool, pgrp int, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false, 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 3 {
		return false, 0, false
	}
	g, err := strconv.Atoi(f[2])
	if err != nil {
		return false, 0, false
	}
	dead := f[0] == "Z" || f[0] == "X"
	// A leader thread that exited shows Z while the process's other threads
	// run ("Zl"): num_threads (field 20) tells.
	if dead && len(f) > 17 {
		if n, err := strconv.Atoi(f[17]); err == nil && n > 1 {
			dead = false
		}
	}
	return dead, g, true
}
