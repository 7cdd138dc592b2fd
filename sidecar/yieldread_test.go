package sidecar

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/leaderd/leaderd/election"
)

// A win skips the fresh read of the peers (a round trip before every
// promote, issue 11) only when the win's verification read showed no other
// candidate of a strictly higher priority. Here the fresh read would name a
// higher target: a skipped read promotes, a read yields.
func TestMachineYieldReadSkippedOnlyWhenNoneHigherWasVerified(t *testing.T) {
	verified := func(prio int) []election.Candidate {
		return []election.Candidate{
			{CandidateValue: election.CandidateValue{ID: "me", Priority: 50}, LeaseID: 0xabc, Key: "c/abc"},
			{CandidateValue: election.CandidateValue{ID: "high", Priority: prio}, LeaseID: 7, Key: "c/7"},
		}
	}
	for _, tc := range []struct {
		name      string
		cands     []election.Candidate
		wantReads int64
		yields    bool
	}{
		{"none higher: no read, promote", verified(50), 0, false},
		{"one higher: read, yield", verified(200), 1, true},
		{"not known: read, yield", nil, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reads atomic.Int64
			m := startMachine(t, func(m *machine) {
				m.configure = func(c *Config) { c.Priority = 50 }
				m.el.peers = func() election.Peers {
					reads.Add(1)
					return peersWith(200, true)
				}
			})
			c := m.candidacy(t)
			m.calls.waitFor(t, "campaign", 1)
			c.win <- &fakeTenure{calls: m.calls, token: 10, cands: tc.cands}
			if tc.yields {
				m.calls.waitFor(t, "campaign", 2) // yielded: resigned, campaigning again
			} else {
				m.calls.waitFor(t, "promote elected", 1)
			}
			log, _ := m.calls.snapshot()
			for _, l := range log {
				if tc.yields && strings.HasPrefix(l, "promote") {
					t.Fatalf("promoted instead of yielding; log:\n  %s", strings.Join(log, "\n  "))
				}
			}
			// Reads after the yield (failback, a later win) are not the win's.
			if got := reads.Load(); tc.wantReads == 0 && got != 0 || tc.wantReads > 0 && got < tc.wantReads {
				t.Fatalf("%d reads of the peers at the win, want %d", got, tc.wantReads)
			}
		})
	}
}
