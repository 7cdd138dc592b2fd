package sidecar_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/leaderd/leaderd/sidecar"
)

// TestBudgetWorkedNumbers checks the arithmetic against the worked numbers
// of docs/design.md (sections 5.2 and 11).
func TestBudgetWorkedNumbers(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name           string
		ttl, demote    time.Duration
		granted        time.Duration
		want           sidecar.Budget
		crash, handOff time.Duration
	}{
		{
			name: "defaults, TTL 15s and demote timeout 5s", ttl: 15 * time.Second, demote: 5 * time.Second,
			want: sidecar.Budget{TTL: 15 * time.Second, RequestedTTL: 15 * time.Second, DemoteTimeout: 5 * time.Second,
				RenewInterval: 3750 * ms, Margin: 1500 * ms, StepDownLead: 6500 * ms, SafeDeadline: 8500 * ms,
				CutOffDemoteLead: 1500 * ms, FrozenAfterThaw: 5 * time.Second, SuspendedAfterResume: 13500 * ms},
			// 15 s + 1 s + 0.5 s + 50 ms + 25 ms; 5 s + 25 ms + 50 ms + 25 ms
			crash: 16575 * ms, handOff: 5100 * ms,
		},
		{
			name: "compose, bench and e2e, TTL 4s and demote timeout 1s", ttl: 4 * time.Second, demote: time.Second,
			want: sidecar.Budget{TTL: 4 * time.Second, RequestedTTL: 4 * time.Second, DemoteTimeout: time.Second,
				RenewInterval: time.Second, Margin: 500 * ms, StepDownLead: 1500 * ms, SafeDeadline: 2500 * ms,
				CutOffDemoteLead: 500 * ms, FrozenAfterThaw: time.Second, SuspendedAfterResume: 3500 * ms},
			crash: 5575 * ms, handOff: 1100 * ms,
		},
		{
			name: "chaos, TTL 3s and demote timeout 1s", ttl: 3 * time.Second, demote: time.Second,
			want: sidecar.Budget{TTL: 3 * time.Second, RequestedTTL: 3 * time.Second, DemoteTimeout: time.Second,
				RenewInterval: 750 * ms, Margin: 500 * ms, StepDownLead: 1500 * ms, SafeDeadline: 1500 * ms,
				CutOffDemoteLead: 500 * ms, FrozenAfterThaw: time.Second, SuspendedAfterResume: 2500 * ms},
			crash: 4575 * ms, handOff: 1100 * ms,
		},
		{
			// etcd raised --ttl 4s to 8s: every figure follows the granted TTL.
			name: "TTL 4s asked, 8s granted", ttl: 4 * time.Second, demote: time.Second, granted: 8 * time.Second,
			want: sidecar.Budget{TTL: 8 * time.Second, RequestedTTL: 4 * time.Second, DemoteTimeout: time.Second,
				RenewInterval: 2 * time.Second, Margin: 800 * ms, StepDownLead: 1800 * ms, SafeDeadline: 6200 * ms,
				CutOffDemoteLead: 800 * ms, FrozenAfterThaw: time.Second, SuspendedAfterResume: 7200 * ms},
			crash: 9575 * ms, handOff: 1100 * ms,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			c.TTL, c.DemoteTimeout = tt.ttl, tt.demote
			got := c.Budget(tt.granted)
			want := tt.want
			want.EtcdElectionTimeout = time.Second
			want.EtcdRevokeTick = 500 * ms
			want.Resign, want.WakeUp, want.HookStart = 25*ms, 50*ms, 25*ms
			want.CrashFailover, want.GracefulHandOff = tt.crash, tt.handOff
			if got != want {
				t.Errorf("Budget(%s) =\n%+v\nwant\n%+v", tt.granted, got, want)
			}
			// The guard's figures are Config's own, so run and check agree.
			g := c
			if tt.granted > 0 {
				g.TTL = tt.granted
			}
			if got.RenewInterval != g.RenewInterval() || got.StepDownLead != g.StepDownLead() || got.Margin != g.Margin() {
				t.Errorf("budget %+v disagrees with Config's guard figures", got)
			}
		})
	}
}

func TestBudgetJSONIsSnakeCaseSeconds(t *testing.T) {
	c := valid()
	b, err := json.Marshal(c.Budget(0))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("budget JSON %s: %v", b, err)
	}
	for key, want := range map[string]float64{
		"ttl_seconds": 15, "requested_ttl_seconds": 15, "renew_interval_seconds": 3.75, "margin_seconds": 1.5,
		"safe_deadline_seconds": 8.5, "crash_failover_seconds": 16.575, "graceful_hand_off_seconds": 5.1,
		"overlap_while_running_seconds": 0, "frozen_after_thaw_seconds": 5, "etcd_election_timeout_assumed_seconds": 1,
		"etcd_revoke_tick_assumed_seconds": 0.5, "suspended_after_resume_seconds": 13.5,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v; JSON %s", key, got, ok, want, b)
		}
	}
}
