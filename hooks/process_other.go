//go:build !linux

package hooks

import (
	"os/exec"
	"syscall"
)

// waitExit waits for the shell and reaps it. Without waitid(WNOWAIT) the
// group is signalled after the reap, with a small pid-reuse window.
func waitExit(cmd *exec.Cmd) (reaped bool, err error) {
	return true, cmd.Wait()
}

// groupAlive reports whether the process group pgid has any member (here
// including zombies and the except pid, which must have been reaped).
func groupAlive(pgid, except int) bool {
	return syscall.Kill(-pgid, 0) == nil
}
