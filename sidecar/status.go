package sidecar

import (
	"time"

	"github.com/leaderd/leaderd/health"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// Status is the JSON body of GET /status.
type Status struct {
	ID             string                `json:"id"`
	Election       string                `json:"election"`
	Role           role.Role             `json:"role"`
	Phase          role.Phase            `json:"phase"`
	Healthy        bool                  `json:"healthy"`
	AppHealthy     bool                  `json:"app_healthy"`
	HealthCheck    *health.Result        `json:"health_check,omitempty"`
	Degraded       bool                  `json:"degraded"`
	Paused         bool                  `json:"paused"`
	Priority       int                   `json:"priority"` // --priority
	Leader         *LeaderStatus         `json:"leader"`
	FencingToken   int64                 `json:"fencing_token,omitempty"`
	Lease          *LeaseStatus          `json:"lease"`
	Etcd           EtcdStatus            `json:"etcd"`
	LastTransition *Transition           `json:"last_transition"`
	Hooks          map[string]HookStatus `json:"hooks"`
	// Budget is the timing budget of this configuration, with the TTL
	// etcd granted (see Budget).
	Budget *Budget `json:"budget"`
}

// LeaderStatus is the known leader of the election.
type LeaderStatus struct {
	ID           string `json:"id"`
	Addr         string `json:"addr,omitempty"`
	FencingToken int64  `json:"fencing_token"`
}

// LeaseStatus describes the current lease.
type LeaseStatus struct {
	ID                    string  `json:"id"`
	TTLSeconds            float64 `json:"ttl_seconds"`
	SecondsToSafeDeadline float64 `json:"seconds_to_safe_deadline"`
}

// EtcdStatus says whether etcd answered the last request.
type EtcdStatus struct {
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

// Transition is a change of role.
type Transition struct {
	Time   time.Time   `json:"time"`
	From   role.Role   `json:"from"`
	To     role.Role   `json:"to"`
	Reason role.Reason `json:"reason"`
}

// HookStatus is the last result of one hook.
type HookStatus struct {
	hooks.Result
	Error string `json:"error,omitempty"`
}
