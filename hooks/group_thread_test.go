package hooks

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A process whose main thread exited while another thread runs shows
// state Z in /proc/<pid>/stat ("Zl" in ps). It is running, so it counts
// as alive: a hook's child of that kind keeps its grace.
func TestGroupAliveSeesAProcessWhoseMainThreadExited(t *testing.T) {
	// gcc backs -race, so the test's machine has it.
	dir := t.TempDir()
	src := filepath.Join(dir, "zl.c")
	prog := `#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *sleeper(void *arg) { sleep(300); return arg; }
int main(void) {
	pthread_t t;
	pthread_create(&t, NULL, sleeper, NULL);
	printf("x\n");
	fflush(stdout);
	pthread_exit(NULL);
}
`
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "zl")
	if out, err := exec.Command("gcc", "-pthread", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
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
		t.Error("groupAlive = false for a group whose process still runs a thread")
	}
}
