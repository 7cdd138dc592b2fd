package main

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLogStartingHidesCommands: hook and health check command lines may
// hold credentials; the starting line says only whether each is set.
func TestLogStartingHidesCommands(t *testing.T) {
	const secret = "sk-canary-4b1d"
	opts, err := parseRun([]string{"--election", "web",
		"--on-promote", "promote.sh --token " + secret + "-promote",
		"--on-leader-change", "follow.sh " + secret + "-follow",
		"--health-cmd", "check --password=" + secret + "-health",
	}, envMap{"LEADERD_ON_DEMOTE": "demote.sh " + secret + "-demote"}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		var out strings.Builder
		logStarting(newLogger(&out, format, slog.LevelInfo), opts)
		s := out.String()
		if strings.Contains(s, secret) {
			t.Errorf("%s: starting line shows a command line: %s", format, s)
		}
		for _, want := range []string{"on_promote_set", "on_demote_set", "on_leader_change_set", "health_cmd_set"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s: starting line lacks %s: %s", format, want, s)
			}
		}
	}
}

// stalledStderr takes no write until released, like a full pipe.
type stalledStderr struct {
	release chan struct{}
	mu      sync.Mutex
	b       strings.Builder
}

func (s *stalledStderr) Write(p []byte) (int, error) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestLogSinkReportsDropsInTheLogFormat: with stderr stalled, logging never
// blocks; the lines that did not fit are counted and, once stderr moves,
// reported by one "log lines dropped" warning in the configured format.
func TestLogSinkReportsDropsInTheLogFormat(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			stderr := &stalledStderr{release: make(chan struct{})}
			sink := newLogSink(stderr, format)
			logger := newLogger(sink, format, slog.LevelInfo)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range 20000 { // more than the sink holds
					logger.Info("noise", "i", i, "pad", strings.Repeat("x", 100))
				}
			}()
			select {
			case <-done:
			case <-time.After(waitTimeout):
				close(stderr.release)
				t.Fatal("logging blocked on a stalled stderr")
			}
			dropped := sink.Dropped()
			if dropped == 0 {
				t.Fatal("nothing dropped: the sink is not bounded")
			}
			close(stderr.release)
			if err := sink.Close(waitTimeout); err != nil {
				t.Fatalf("Close: %v", err)
			}
			stderr.mu.Lock()
			out := stderr.b.String()
			stderr.mu.Unlock()
			// Drops are reported where they happened: when the drainer frees
			// room mid-stall, there may be more than one gap, so one report
			// each; together they count every dropped line.
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			var reported, kept uint64
			for _, line := range lines {
				count, ok := dropReport(t, format, line)
				if ok {
					reported += count
				} else {
					kept++
				}
			}
			if _, ok := dropReport(t, format, lines[len(lines)-1]); !ok {
				t.Errorf("the last line %q is not the drop report", lines[len(lines)-1])
			}
			if reported != dropped {
				t.Errorf("reports count %d dropped lines, the sink %d", reported, dropped)
			}
			if kept+dropped != 20000 {
				t.Errorf("%d lines written and %d dropped, want 20000 in all", kept, dropped)
			}
		})
	}
}

// dropReport parses a "log lines dropped" warning in format and returns its
// count; ok is false for any other line.
func dropReport(t *testing.T, format, line string) (count uint64, ok bool) {
	t.Helper()
	if format == "json" {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if rec["msg"] != "log lines dropped" {
			return 0, false
		}
		if rec["level"] != "WARN" {
			t.Errorf("report %v is not a WARN", rec)
		}
		n, _ := rec["count"].(float64)
		return uint64(n), true
	}
	if !strings.Contains(line, `msg="log lines dropped"`) {
		return 0, false
	}
	if !strings.Contains(line, "level=WARN") {
		t.Errorf("report %q is not a WARN", line)
	}
	_, rest, _ := strings.Cut(line, "count=")
	field, _, _ := strings.Cut(rest, " ")
	n, err := strconv.ParseUint(field, 10, 64)
	if err != nil {
		t.Errorf("report %q has no count: %v", line, err)
	}
	return n, true
}
