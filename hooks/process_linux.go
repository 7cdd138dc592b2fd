package hooks

import (
	"os/exec"
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
