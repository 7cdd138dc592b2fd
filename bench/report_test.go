package main

import (
	"testing"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
)

func TestCheckTimeline(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	ev := func(ms int, hook hooks.Event, phase timeline.Phase, id string, token int64, reason role.Reason) timeline.Event {
		return timeline.Event{At: at(ms), Hook: hook, Phase: phase, ID: id, Token: token, Reason: reason, OK: phase == timeline.PhaseEnd}
	}
	handOff := []timeline.Event{
		ev(0, hooks.Promote, timeline.PhaseStart, "r1", 5, role.ReasonElected),
		ev(100, hooks.Demote, timeline.PhaseEnd, "r1", 5, role.ReasonShutdown),
		ev(110, hooks.Promote, timeline.PhaseStart, "r2", 7, role.ReasonElected),
	}
	tests := []struct {
		name             string
		evs              []timeline.Event
		overlaps, tokens int
	}{
		{"hand-off", handOff, 0, 0},
		// r2 is SIGKILLed while primary: its tenure is closed only by its
		// restart's start-up demote, after r3 promoted; not compared.
		{"crash closed by the start-up demote", append(handOff[:3:3],
			ev(3000, hooks.Promote, timeline.PhaseStart, "r3", 9, role.ReasonElected),
			ev(3500, hooks.Demote, timeline.PhaseEnd, "r2", 0, role.ReasonStartup)), 0, 0},
		{"crash never closed", append(handOff[:3:3],
			ev(3000, hooks.Promote, timeline.PhaseStart, "r3", 9, role.ReasonElected)), 0, 0},
		{"promote before the demote ended", []timeline.Event{
			ev(0, hooks.Promote, timeline.PhaseStart, "r1", 5, role.ReasonElected),
			ev(90, hooks.Promote, timeline.PhaseStart, "r2", 7, role.ReasonElected),
			ev(100, hooks.Demote, timeline.PhaseEnd, "r1", 5, role.ReasonLeaseLost),
		}, 1, 0},
		{"token not increasing", append(handOff[:2:2],
			ev(110, hooks.Promote, timeline.PhaseStart, "r2", 5, role.ReasonElected)), 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := checkTimeline(tc.evs)
			if len(s.Overlaps) != tc.overlaps || len(s.Tokens) != tc.tokens {
				t.Fatalf("overlaps %q, tokens %q; want %d and %d", s.Overlaps, s.Tokens, tc.overlaps, tc.tokens)
			}
		})
	}
}
