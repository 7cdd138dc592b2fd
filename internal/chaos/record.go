// Package chaos is the randomized fault campaign: a real three-member etcd
// cluster behind TCP fault proxies, `leaderd run` replicas, a fenced store
// and a writer, faults drawn from a seed, and a checker that judges the run
// from what was recorded. `go run ./chaos` drives it.
package chaos

import (
	"time"

	"github.com/leaderd/leaderd/internal/replicas"
)

// Record is everything a campaign observed. The checker reads only this,
// so a run can be judged (and re-judged) after the fact.
type Record struct {
	Seed     int64
	Started  time.Time
	Ended    time.Time
	Replicas []string // every replica id that took part

	// Timeline is the hook timeline: promote/demote start/end per replica,
	// with fencing tokens, in file order.
	Timeline []replicas.Event
	// Samples are the /primary probes, every SampleInterval on every
	// replica that was running.
	Samples []Sample
	// Writes are the fenced store's decisions, in the order it made them.
	Writes []StoreWrite
	// Acked are the writes the writer saw acknowledged.
	Acked []Ack
	// Faults are the injected faults, in injection order.
	Faults []Fault
	// Frozen are the windows in which a replica could not run: SIGSTOP to
	// SIGCONT, widened by FrozenGrace after the SIGCONT (its timers fire
	// late). Overlaps involving them are allowed only when fenced.
	Frozen []Window
	// HookFaults are the windows in which a replica's hooks were made to
	// fail or hang: its demote may not have happened, so overlaps involving
	// its tenures are allowed only when fenced, as with a frozen process.
	HookFaults []Window
	// Exits are leaderd process exits; Injected says whether a fault
	// (SIGKILL, SIGTERM, restart) caused it.
	Exits []Exit
	// End is the state found after the last fault healed.
	End EndState
	// Bound is the documented worst-case recovery after a fault heals:
	// TTL + etcd's election timeout + 0.5s + hook time.
	Bound time.Duration
}

// Sample is one GET /primary on one replica.
type Sample struct {
	Replica  string
	Sent     time.Time
	Received time.Time
	Code     int // 0: no answer (refused, timed out)
}

// StoreWrite is one write the fenced store decided on.
type StoreWrite struct {
	At       time.Time
	Token    int64
	Value    int64 // unique per write attempt
	Accepted bool  // false: fenced (token below the highest seen)
	Highest  int64 // the highest token the store had seen before this write
}

// Ack is one write the writer saw acknowledged, and through which replica.
type Ack struct {
	At      time.Time
	Replica string
	Token   int64
	Value   int64
}

// Fault is one injected fault.
type Fault struct {
	Seq      int       // 1-based, in injection order
	Kind     string    // e.g. "sigkill", "cut-all", "member-isolate"
	Target   string    // replica id, "member-N", or "" for the cluster
	Primary  bool      // the target was the primary when injected
	Injected time.Time // when the fault began
	Healed   time.Time // when it was undone (zero: never, or instant)
	// Overlaps are the Seqs of faults active at the same time.
	Overlaps []int
	// Recovered is when exactly one replica was primary (and serving) again
	// after this fault and every fault overlapping it healed; zero if not
	// within the wait.
	Recovered time.Time
	// PrimaryLost is when the primary stopped serving because of this
	// fault, and NextPrimary when a replica served as primary again (both
	// zero when the primary was not affected).
	PrimaryLost time.Time
	NextPrimary time.Time
	Note        string
}

// Window is a time range on one replica.
type Window struct {
	Replica    string
	Start, End time.Time
}

// Exit is one leaderd process exit.
type Exit struct {
	Replica  string
	At       time.Time
	Code     int
	Injected bool
}

// EndState is what the campaign found at the end, after healing everything.
type EndState struct {
	Primaries    []string // replicas answering /primary 200
	LiveLeases   []int64  // lease ids etcd holds
	SidecarLease []int64  // lease ids the live sidecars report in /status
	LeftoverHook []string // hook processes still running (command lines)
}
