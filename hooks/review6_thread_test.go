package hooks

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Review (session 6): a process whose main thread exited while another
// thread runs shows state Z in /proc/<pid>/stat ("Zl" in ps). It is
// running, but groupAlive (and the scan before it) counts it as gone, so a
// hook's child of that kind loses its grace. Pre-existing.
func TestReview6GroupAliveSeesAProcessWhoseMainThreadExited(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 (ctypes) to end a main thread alone:", err)
	}
	script := `import threading, time, ctypes, sys
threading.Thread(target=time.sleep, args=(300,)).start()
sys.stdout.write("x\n"); sys.stdout.flush()
ctypes.CDLL(None).pthread_exit(None)
`
	cmd := exec.Command(py, "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	if _, err := out.Read(make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	stat := "/proc/" + strconv.Itoa(pgid) + "/stat"
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the main thread did not exit: %s", b)
		}
	}
	if err := syscall.Kill(pgid, 0); err != nil {
		t.Fatalf("the process is gone: %v", err)
	}
	if !groupAlive(pgid, 0) {
		t.Errorf("groupAlive = false (before: %v) for a group whose process still runs a thread", groupAliveBefore(pgid, 0))
	}
}
