// Package hooks runs the operator's promote and demote commands as
// supervised processes: own process group, bounded time, output logged.
package hooks

import (
	"strconv"
	"time"

	"github.com/leaderd/leaderd/role"
)

// Event is what a hook is run for: LEADERD_EVENT.
type Event string

// Events.
const (
	Promote      Event = "promote"
	Demote       Event = "demote"
	LeaderChange Event = "leader-change" // on a standby, once a new primary has promoted
)

// Env is what a hook is told, through LEADERD_* environment variables.
type Env struct {
	Event        Event       // LEADERD_EVENT
	Role         role.Role   // LEADERD_ROLE: the role after the hook
	PreviousRole role.Role   // LEADERD_PREVIOUS_ROLE
	Reason       role.Reason // LEADERD_REASON: startup, elected, shutdown, ...
	ID           string      // LEADERD_ID
	Election     string      // LEADERD_ELECTION
	Leader       string      // LEADERD_LEADER: the known leader's id, may be empty
	LeaderAddr   string      // LEADERD_LEADER_ADDR: the leader's --advertise, may be empty
	FencingToken int64       // LEADERD_FENCING_TOKEN: empty when 0
	LeaseID      int64       // LEADERD_LEASE_ID in hex: empty when 0
}

// Vars returns the variables as KEY=value pairs.
func (e Env) Vars() []string {
	token, lease := "", ""
	if e.FencingToken != 0 {
		token = strconv.FormatInt(e.FencingToken, 10)
	}
	if e.LeaseID != 0 {
		lease = strconv.FormatInt(e.LeaseID, 16)
	}
	return []string{
		"LEADERD_EVENT=" + string(e.Event),
		"LEADERD_ROLE=" + string(e.Role),
		"LEADERD_PREVIOUS_ROLE=" + string(e.PreviousRole),
		"LEADERD_REASON=" + string(e.Reason),
		"LEADERD_ID=" + e.ID,
		"LEADERD_ELECTION=" + e.Election,
		"LEADERD_LEADER=" + e.Leader,
		"LEADERD_LEADER_ADDR=" + e.LeaderAddr,
		"LEADERD_FENCING_TOKEN=" + token,
		"LEADERD_LEASE_ID=" + lease,
	}
}

// Result is how one run of a hook ended.
type Result struct {
	Hook     string        `json:"hook"`
	Reason   role.Reason   `json:"reason"`
	Start    time.Time     `json:"start"`
	End      time.Time     `json:"end"`
	Duration time.Duration `json:"-"`
	ExitCode int           `json:"exit_code"` // -1 when killed or not started
	TimedOut bool          `json:"timed_out"` // killed at its timeout
	Canceled bool          `json:"canceled"`  // killed because its context ended
	Err      error         `json:"-"`         // nil exactly when the hook succeeded
}

// OK reports whether the hook succeeded.
func (r Result) OK() bool { return r.Err == nil }
