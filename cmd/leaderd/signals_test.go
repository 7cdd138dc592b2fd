package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPIsIgnored: SIGHUP neither stops nor counts towards the second
// signal; it is logged once per signal at info, and SIGTERM still stops
// gracefully afterwards.
func TestSIGHUPIsIgnored(t *testing.T) {
	sc := newFakeSidecar()
	signals := make(chan os.Signal, 4)
	var log syncBuffer
	done := runFakeTo(sc, signals, &log)
	signals <- syscall.SIGHUP
	signals <- syscall.SIGHUP
	deadline := time.Now().Add(waitTimeout)
	for strings.Count(log.String(), hangupIgnored) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("two SIGHUPs not logged as ignored within %s: %s", waitTimeout, log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-sc.cancelled:
		t.Fatal("SIGHUP cancelled Run's context")
	case err := <-done:
		t.Fatalf("runUntilSignalled returned %v after SIGHUP", err)
	default:
	}
	signals <- syscall.SIGTERM
	if err := waitErr(t, done); err != nil {
		t.Fatalf("runUntilSignalled = %v, want nil", err)
	}
	if n := sc.aborts.Load(); n != 0 {
		t.Errorf("Abort called %d times: a SIGHUP counted as a first signal", n)
	}
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, hangupIgnored) && !strings.Contains(line, "level=INFO") {
			t.Errorf("SIGHUP logged not at info: %s", line)
		}
	}
}

// TestHooksStartWithDefaultSIGPIPE: surviveBrokenPipes keeps leaderd alive
// on a closed stderr without handing an ignored SIGPIPE down to its hooks
// (an ignored signal stays ignored across exec).
func TestHooksStartWithDefaultSIGPIPE(t *testing.T) {
	surviveBrokenPipes()
	out, err := exec.Command("/bin/sh", "-c", "grep '^SigIgn:' /proc/self/status").Output()
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	mask, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(out), "SigIgn:")), 16, 64)
	if err != nil {
		t.Fatalf("SigIgn line %q: %v", out, err)
	}
	if mask&(1<<(uint(syscall.SIGPIPE)-1)) != 0 {
		t.Errorf("a child starts with SIGPIPE ignored (SigIgn %x)", mask)
	}
}

// runFakeTo is runFake with a log safe to read while it runs.
func runFakeTo(sc stopper, signals <-chan os.Signal, log *syncBuffer) <-chan error {
	done := make(chan error, 1)
	logger := newLogger(log, "text", 0)
	go func() { done <- runUntilSignalled(sc, signals, logger) }()
	return done
}
