package main

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logSink keeps the Info lines of the hand-off elections' sidecars in
// memory, with their exact times: they mark the steps of a hand-off that
// the hooks' timeline does not see (the old demote hook's end as the
// sidecar sees it, the new primary's verified win, its promote's start).
type logSink struct {
	mu    sync.Mutex
	lines []logLine
}

type logLine struct {
	At    time.Time
	Msg   string
	Attrs map[string]string
}

func (s *logSink) handler() slog.Handler { return &sinkHandler{sink: s} }

// since returns the lines at or after t.
func (s *logSink) since(t time.Time) []logLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logLine
	for _, l := range s.lines {
		if !l.At.Before(t) {
			out = append(out, l)
		}
	}
	return out
}

type sinkHandler struct {
	sink  *logSink
	attrs []slog.Attr
}

func (h *sinkHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *sinkHandler) Handle(_ context.Context, r slog.Record) error {
	m := make(map[string]string, len(h.attrs)+r.NumAttrs())
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.sink.mu.Lock()
	h.sink.lines = append(h.sink.lines, logLine{At: r.Time, Msg: r.Message, Attrs: m})
	h.sink.mu.Unlock()
	return nil
}

func (h *sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &sinkHandler{sink: h.sink, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

// WithGroup is not used by the sidecar; groups are flattened.
func (h *sinkHandler) WithGroup(string) slog.Handler { return h }

// handoffSteps splits one hand-off at the sidecars' own log lines:
//
//	demote hook's end (its timeline line) → the old sidecar sees the hook end
//	→ the new sidecar's verified win ("elected") → its promote hook starts
//	→ the hook's first timeline line.
//
// ok is false when a line is missing.
func handoffSteps(lines []logLine, election, oldID, newID string, demoteEnd, promoteStart time.Time) (steps [4]time.Duration, ok bool) {
	var ended, elected, started time.Time
	for _, l := range lines {
		if l.Attrs["election"] != election {
			continue
		}
		switch {
		case ended.IsZero() && l.Msg == "hook ended" && l.Attrs["id"] == oldID && l.Attrs["hook"] == "demote":
			ended = l.At
		case elected.IsZero() && l.Msg == "elected" && l.Attrs["id"] == newID:
			elected = l.At
		case started.IsZero() && l.Msg == "hook started" && l.Attrs["id"] == newID && l.Attrs["hook"] == "promote":
			started = l.At
		}
	}
	if ended.IsZero() || elected.IsZero() || started.IsZero() {
		return steps, false
	}
	return [4]time.Duration{ended.Sub(demoteEnd), elected.Sub(ended), started.Sub(elected), promoteStart.Sub(started)}, true
}

// stepNames name handoffSteps' intervals, for the report.
var stepNames = [4]string{
	"hand-off step: demote hook's last line → the sidecar sees it end (shell exit, process-group check, reap)",
	"hand-off step: → new primary's verified win (resign, watch event, the read that finds its turn and verifies it)",
	"hand-off step: → its promote hook started (fork/exec)",
	"hand-off step: → the hook's first line (`sh` runs `date`)",
}
