package chaos

import (
	"os"
	"testing"
	"time"
)

// stderr-stall must leave leaderd's stderr full, so its next write blocks,
// and must not block the campaign itself while it fills the pipe, even
// though exec left the write end in blocking mode.
func TestStallStderrFillsThePipeWithoutBlocking(t *testing.T) {
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := setPipeSize(wr, stderrPipeSize); err != nil {
		t.Fatal(err)
	}
	_ = wr.Fd() // what exec does: the shared description turns blocking
	n := &node{id: "r1", stall: newStall(), stderr: wr}
	pumped := make(chan struct{})
	go func() { pumpStderr(r, nil, n.stall); close(pumped) }()

	w := &World{}
	done := make(chan struct{})
	go func() { w.stallStderr(n); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stallStderr blocked")
	}

	// leaderd's next write: blocks while stalled, goes through once unstalled.
	wrote := make(chan error, 1)
	go func() { _, err := wr.Write([]byte("a log line\n")); wrote <- err }()
	select {
	case err := <-wrote:
		t.Fatalf("a write to the stalled stderr returned (%v) instead of blocking", err)
	case <-time.After(300 * time.Millisecond):
	}
	n.stall.set(false)
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the write stayed blocked after the stall ended")
	}
	wr.Close()
	select {
	case <-pumped:
	case <-time.After(5 * time.Second):
		t.Fatal("the pump did not end at EOF")
	}
}
