package sidecar

import (
	"encoding/json"
	"time"
)

// Figures the budget assumes: etcd's are server settings leaderd cannot
// see, the rest are allowances for steps too short to bound. See
// docs/design.md, "Timing budget".
const (
	// AssumedEtcdElectionTimeout is etcd's default --election-timeout
	// (1000 ms). raft randomizes it up to twice that.
	AssumedEtcdElectionTimeout = time.Second
	// AssumedEtcdRevokeTick is how often etcd's lessor looks for expired
	// leases (the 500 ms ticker of lessor.runLoop, hard-coded in etcd).
	AssumedEtcdRevokeTick = 500 * time.Millisecond

	// The last steps of a hand-off, after the demote (graceful) or the
	// revoke (crash). Measured together (BENCHMARKS.md, 2 CPUs): p99
	// 12 ms from the old demote's end to the new promote's start after a
	// graceful stop or in a switchover on a quiet machine, 22-44 ms on a
	// loaded one, and 20 ms at p99 with 3,000 sidecars on one etcd; the
	// 100 ms class of the older campaign wait is gone. The allowances add
	// up to 100 ms, above every measured p99.

	// resignAllowance is the resign: one etcd round trip.
	resignAllowance = 25 * time.Millisecond
	// wakeUpAllowance is the next candidate's watch event and verify read.
	wakeUpAllowance = 50 * time.Millisecond
	// hookStartAllowance is forking the promote hook.
	hookStartAllowance = 25 * time.Millisecond
)

// Budget is the timing a configuration buys: the lease guard's figures and
// the worst cases of a crash failover, a graceful hand-off and an overlap
// of two replicas' roles. `leaderd check` prints it, `leaderd run` logs it
// once and GET /status shows it; the arithmetic is here only.
type Budget struct {
	// TTL is the lease TTL in effect: the one etcd granted, once read back.
	TTL time.Duration
	// RequestedTTL is the TTL asked for (--ttl).
	RequestedTTL  time.Duration
	DemoteTimeout time.Duration
	// RenewInterval, Margin and StepDownLead follow the TTL in effect.
	RenewInterval time.Duration
	Margin        time.Duration
	StepDownLead  time.Duration
	// SafeDeadline is how long after each successful renewal's send the
	// primary starts stepping down if no renewal succeeds meanwhile:
	// TTL - StepDownLead.
	SafeDeadline time.Duration

	// Assumed etcd settings and the hand-off allowances (see the
	// constants above).
	EtcdElectionTimeout time.Duration
	EtcdRevokeTick      time.Duration
	Resign              time.Duration
	WakeUp              time.Duration
	HookStart           time.Duration

	// CrashFailover is the worst-case time from a primary's crash to the
	// next promote hook's start: TTL + etcd's election timeout + etcd's
	// revoke tick + wake-up + hook start.
	CrashFailover time.Duration
	// GracefulHandOff is the worst case from a graceful stop to the next
	// promote hook's start: demote timeout + resign + wake-up + hook
	// start.
	GracefulHandOff time.Duration

	// OverlapWhileRunning is how long two replicas' roles can overlap
	// while both processes run: none. A primary cut off from etcd has
	// demoted CutOffDemoteLead before etcd may expire its lease.
	OverlapWhileRunning time.Duration
	CutOffDemoteLead    time.Duration
	// FrozenAfterThaw is how long a frozen primary (SIGSTOP, docker pause,
	// a VM stall) may stay primary after it thaws: the guard fires at
	// once, and the demote hook is killed at its timeout. Fencing must
	// cover the freeze past the lease's expiry plus this.
	FrozenAfterThaw time.Duration
	// SuspendedAfterResume is the same for a host suspend, which stops
	// the monotonic clock too: the guard is up to SafeDeadline away, then
	// the demote: TTL - Margin. (When etcd answers, the next renewal finds
	// the lease gone within a renew interval.)
	SuspendedAfterResume time.Duration
}

// Budget computes the timing budget of c, with the TTL etcd granted in
// effect (0: not known yet, the TTL asked for).
func (c Config) Budget(granted time.Duration) Budget {
	requested := c.TTL
	if granted > 0 {
		c.TTL = granted
	}
	b := Budget{
		TTL:           c.TTL,
		RequestedTTL:  requested,
		DemoteTimeout: c.DemoteTimeout,
		RenewInterval: c.RenewInterval(),
		Margin:        c.Margin(),
		StepDownLead:  c.StepDownLead(),
		SafeDeadline:  c.TTL - c.StepDownLead(),

		EtcdElectionTimeout: AssumedEtcdElectionTimeout,
		EtcdRevokeTick:      AssumedEtcdRevokeTick,
		Resign:              resignAllowance,
		WakeUp:              wakeUpAllowance,
		HookStart:           hookStartAllowance,

		OverlapWhileRunning: 0,
		CutOffDemoteLead:    c.Margin(),
		FrozenAfterThaw:     c.DemoteTimeout,
	}
	b.CrashFailover = b.TTL + b.EtcdElectionTimeout + b.EtcdRevokeTick + b.WakeUp + b.HookStart
	b.GracefulHandOff = b.DemoteTimeout + b.Resign + b.WakeUp + b.HookStart
	b.SuspendedAfterResume = b.SafeDeadline + b.DemoteTimeout
	return b
}

// LogAttrs are the budget's key/values for the start-up log, named as in
// its JSON.
func (b Budget) LogAttrs() []any {
	var attrs []any
	for _, f := range b.fields() {
		attrs = append(attrs, f.key, f.d.String())
	}
	return attrs
}

// MarshalJSON writes every figure in seconds, snake_case, as GET /status
// and `leaderd check --json` show it (documented in README.md).
func (b Budget) MarshalJSON() ([]byte, error) {
	m := map[string]float64{}
	for _, f := range b.fields() {
		m[f.key+"_seconds"] = f.d.Seconds()
	}
	return json.Marshal(m)
}

type budgetField struct {
	key string
	d   time.Duration
}

// fields names each figure once, for the log and the JSON.
func (b Budget) fields() []budgetField {
	return []budgetField{
		{"ttl", b.TTL},
		{"requested_ttl", b.RequestedTTL},
		{"demote_timeout", b.DemoteTimeout},
		{"renew_interval", b.RenewInterval},
		{"margin", b.Margin},
		{"step_down_lead", b.StepDownLead},
		{"safe_deadline", b.SafeDeadline},
		{"etcd_election_timeout_assumed", b.EtcdElectionTimeout},
		{"etcd_revoke_tick_assumed", b.EtcdRevokeTick},
		{"resign", b.Resign},
		{"wake_up", b.WakeUp},
		{"hook_start", b.HookStart},
		{"crash_failover", b.CrashFailover},
		{"graceful_hand_off", b.GracefulHandOff},
		{"overlap_while_running", b.OverlapWhileRunning},
		{"cut_off_demote_lead", b.CutOffDemoteLead},
		{"frozen_after_thaw", b.FrozenAfterThaw},
		{"suspended_after_resume", b.SuspendedAfterResume},
	}
}
