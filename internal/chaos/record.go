// Package chaos is the randomized fault campaign: a real three-member etcd
// cluster behind TCP fault proxies, `leaderd run` replicas, a fenced store
// and a writer, faults drawn from a seed, and a checker that judges the run
// from what was recorded. `go run ./chaos` drives it.
package chaos

import (
	"time"

	"github.com/leaderd/leaderd/internal/timeline"
)

// Record is everything a campaign observed. The checker reads only this,
// so a run can be judged (and re-judged) after the fact.
type Record struct {
	Seed     int64
	Revision string // the tree's VCS revision, for a replay
	Replay   string // the command that draws the same faults again
	Started  time.Time
	Ended    time.Time
	Replicas []string // every replica id that took part

	// Timeline is the hook timeline: promote/demote start/end per replica,
	// with fencing tokens, in file order.
	Timeline []timeline.Event
	// TimelineErr is set when the timeline could not be read; TimelineSkipped
	// counts its lines that did not parse. Either makes the run unjudgeable.
	TimelineErr     string
	TimelineSkipped int
	// Samples are the /primary probes, every SampleInterval on every
	// replica that was running.
	Samples []Sample
	// Writes are the fenced store's decisions, in the order it made them:
	// writes, and the fence raised by promote hooks.
	Writes []StoreWrite
	// Acked are the writes the writers saw acknowledged.
	Acked []Ack
	// Faults are the injected faults, in injection order.
	Faults []Fault
	// Frozen are the windows in which a replica could not run: SIGSTOP to
	// SIGCONT, widened by a grace after the SIGCONT (its demote runs then),
	// Kind "frozen"; and host stalls the campaign measured on its own clock
	// (every process stopped at once), Kind "stall", Replica "*".
	Frozen []Window
	// HookFaults are the windows in which a replica's hooks were made to
	// misbehave, Kind the mode ("demote-fail", "demote-hang", "promote-fail",
	// "promote-hang", "flood"), widened by the same grace after the heal.
	HookFaults []Window
	// Exits are leaderd process exits; Injected says whether a fault
	// (SIGKILL, SIGTERM, restart) caused it.
	Exits []Exit
	// End is the state found after the last fault healed.
	End EndState
	// Bound is the documented worst-case recovery after a fault heals:
	// TTL + etcd's election timeout + 0.5s + hook time.
	Bound time.Duration
	// Priorities are the replicas' --priority values (nil: run without
	// -priorities, all 100); Failback their --failback delay (0: off).
	Priorities map[string]int `json:",omitempty"`
	Failback   time.Duration  `json:",omitempty"`
	// Yields and Failbacks count the replicas' logged yields at a win and
	// failback requests: hand-overs no fault asked for.
	Yields    int `json:",omitempty"`
	Failbacks int `json:",omitempty"`
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
	Kind     string // "write"; "promote" (a promote hook raising the fence); "demote"
	Replica  string // whose app sent it
	Via      string // writes: "lb" (routed by /primary) or "app" (the app's own writes)
	Token    int64
	Value    int64 // unique per write attempt; 0 for promote and demote
	Accepted bool  // false: fenced (token below the highest seen)
	Highest  int64 // the highest token the store had seen before this decision
}

// Ack is one write the writer saw acknowledged, and through which replica.
type Ack struct {
	At      time.Time
	Replica string
	Via     string // "lb" or "app", as in StoreWrite
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
	// InjectErr is set when the fault could not be injected (e.g. an
	// operator request refused while another was pending): it had no
	// effect, and does not count toward the campaign's faults.
	InjectErr string
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
	Kind       string
	Start, End time.Time
}

// Exit is one leaderd process exit.
type Exit struct {
	Replica  string
	At       time.Time
	Code     int  // -1: killed by a signal
	Injected bool // a fault (or the end of the run) stopped it
	Graceful bool // it was stopped with SIGTERM, so it must exit 0
}

// EndState is what the campaign found at the end, after healing everything.
type EndState struct {
	Primaries    []string // replicas answering /primary 200
	LiveLeases   []int64  // lease ids etcd holds
	SidecarLease []int64  // lease ids the live sidecars report in /status
	LeftoverHook []string // hook processes still running (command lines)
	Down         []string // replica ids not running when the end state was taken
	// With -priorities: Highest is the running replica of the highest
	// priority when the end state was taken; Quiet is a window after the
	// end state (and failback, if on) settled, with no fault and every
	// replica healthy, in which no hand-over is due (promotes there are
	// churn: yields or failbacks that do not settle).
	Highest string  `json:",omitempty"`
	Quiet   *Window `json:",omitempty"`
}
