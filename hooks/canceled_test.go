package hooks

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestCanceledRunIsNotLoggedAsAnError: a run its caller cancels (a moot
// leader-change hook, a lost tenure's promote) ends at WARN, not ERROR.
func TestCanceledRunIsNotLoggedAsAnError(t *testing.T) {
	dir := t.TempDir()
	log, buf := jsonLogger()
	r := &Runner{Name: "leader-change", Command: "echo $$ > started; exec sleep 30", Timeout: time.Minute, Dir: dir, Logger: log}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan Result, 1)
	go func() { ch <- r.Run(ctx, testEnv()) }()
	readPID(t, filepath.Join(dir, "started")) // canceled while it runs
	cancel()
	var res Result
	select {
	case res = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !res.Canceled {
		t.Fatalf("result %+v, want canceled", res)
	}
	for _, rec := range buf.records(t) {
		if rec["msg"] == "hook ended" {
			if rec["level"] != "WARN" {
				t.Errorf("canceled run ended at %v, want WARN", rec["level"])
			}
			return
		}
	}
	t.Fatal("no hook ended record")
}
