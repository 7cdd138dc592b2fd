package hooks

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// waitExit blocks until the shell has exited but leaves it unreaped (a
// zombie): while it is, its pid, and so its process group id, cannot be
// reused, so Run can still signal the group safely. It reports reaped=false;
// Run reaps through cmd.Wait.
func waitExit(cmd *exec.Cmd) (reaped bool, err error) {
	const pPID = 1      // P_PID
	var info [16]uint64 // siginfo_t (128 bytes), unused
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(cmd.Process.Pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			// On any other error cmd.Wait reports what went wrong.
			return false, nil
		}
	}
}

// groupAlive reports whether the process group pgid has a member, other than
// pid except, that is not a zombie. Zombies count as gone: they have ended,
// and where nobody reaps orphans (leaderd as PID 1 without an init) they
// would otherwise look alive forever.
func groupAlive(pgid, except int) bool {
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
			continue // exited meanwhile
		}
		// "pid (comm) state ppid pgrp ...": comm may hold anything, so parse
		// after its last ')'.
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
