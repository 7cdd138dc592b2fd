// Package role names the states a replica reports, typed so that no bare
// string stands for one across a package boundary: its Role, the Phase
// within that role, and the Reason for a change of role. They appear in
// /status, the member records in etcd, the tenure history and the hooks'
// LEADERD_ROLE, LEADERD_PREVIOUS_ROLE and LEADERD_REASON.
package role

// Role is primary or standby. Exactly one replica of an election is
// primary: from its promote hook to its demote hook.
type Role string

// Roles.
const (
	Primary Role = "primary"
	Standby Role = "standby"
)

// Phase refines the role for operators: what the sidecar is doing now.
type Phase string

// Phases; docs/design.md draws the machine that moves between them.
const (
	PhaseStarting    Phase = "starting"    // running the start-up demote
	PhaseConnecting  Phase = "connecting"  // standby on its way into the election: getting a lease, backing off, or reading the control keys
	PhaseCampaigning Phase = "campaigning" // standby, waiting to lead
	PhaseUnhealthy   Phase = "unhealthy"   // standby out of the election: the app is unhealthy
	PhasePaused      Phase = "paused"      // standby out of the election: the election is paused
	PhaseObserving   Phase = "observing"   // standby that never campaigns (--no-failover)
	PhaseYielding    Phase = "yielding"    // standby out of the election during a switchover to another
	PhasePromoting   Phase = "promoting"   // won; promote hook running
	PhasePrimary     Phase = "primary"     // promote succeeded; serving as primary
	PhaseDemoting    Phase = "demoting"    // demote hook running or being retried
	PhaseStopped     Phase = "stopped"
)

// Reason says why the role changed (or was confirmed, at start-up).
type Reason string

// Reasons.
const (
	ReasonStartup         Reason = "startup"          // the start-up demote
	ReasonElected         Reason = "elected"          // won the election
	ReasonShutdown        Reason = "shutdown"         // a graceful stop
	ReasonLeaseLost       Reason = "lease-lost"       // etcd no longer has the lease (or it lapsed while frozen)
	ReasonEtcdUnreachable Reason = "etcd-unreachable" // the lease's safe deadline passed without a renewal
	ReasonKeyDeleted      Reason = "key-deleted"      // the leader key was deleted or replaced by hand
	ReasonPromoteFailed   Reason = "promote-failed"   // the promote hook failed: give way
	ReasonUnhealthy       Reason = "unhealthy"        // the app's health check failed while primary
	ReasonResigned        Reason = "resigned"         // POST /resign or `leaderd resign`
	ReasonSwitchover      Reason = "switchover"       // `leaderd switchover`: handed to a named standby
)
