package hooks

import (
	"context"
	"testing"
	"time"
)

// TestCanceledRunIsNotLoggedAsAnError: a run its caller cancels (a moot
// leader-change hook, a lost tenure's promote) ends at WARN, not ERROR.
func TestCanceledRunIsNotLoggedAsAnError(t *testing.T) {
	log, buf := jsonLogger()
	r := &Runner{Name: "leader-change", Command: "sleep 30", Timeout: time.Minute, Logger: log}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	res := runBounded(t, ctx, r, testEnv(), 10*time.Second)
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
