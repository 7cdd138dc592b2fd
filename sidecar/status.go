package sidecar

import (
	"sync"
	"time"

	"github.com/leaderd/leaderd/election"
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
	Leader         *LeaderStatus         `json:"leader"`
	FencingToken   int64                 `json:"fencing_token,omitempty"`
	Lease          *LeaseStatus          `json:"lease"`
	Etcd           EtcdStatus            `json:"etcd"`
	LastTransition *Transition           `json:"last_transition"`
	Hooks          map[string]HookStatus `json:"hooks"`
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

// state is what the loop shares with the HTTP API and the leader watch.
type state struct {
	mu             sync.Mutex
	running        bool
	role           role.Role
	phase          role.Phase
	demoteFailed   bool
	candidacy      candidacy // nil while no lease is held
	tenure         tenure    // the tenure being served; nil while none
	controlKnown   bool      // the control keys were read at least once
	resignFor      int64     // the tenure a pending POST /resign is for; 0: none
	controlFailing bool      // the control watch's last read failed
	leaderFailing  bool      // the leader watch's last read failed
	candidates     []string  // ids in campaign order, from the leader watch
	control        election.Control
	fencingToken   int64
	leader         *LeaderStatus
	etcdReachable  bool
	etcdErr        string
	lastTransition *Transition
	hooks          map[string]HookStatus
	started        time.Time
	metrics        *metrics // not guarded by mu: safe for concurrent use
	// changed wakes the member publisher after every update (buffered 1,
	// latest wins), so a phase change is published at once, not at the
	// next refresh tick. Not guarded by mu.
	changed    chan struct{}
	appHealthy func() bool
}

func newState() *state {
	st := &state{role: role.Standby, phase: role.PhaseStarting, hooks: map[string]HookStatus{}, appHealthy: alwaysHealthy{}.Healthy, started: time.Now(), changed: make(chan struct{}, 1)}
	st.metrics = newMetrics(st)
	return st
}

func (s *state) update(fn func(*state)) {
	s.mu.Lock()
	defer wake(s.changed) // after the unlock below
	defer s.mu.Unlock()
	fn(s)
}

func (s *state) setPhase(p role.Phase) { s.update(func(s *state) { s.phase = p }) }

func (s *state) setEtcd(err error) {
	s.update(func(s *state) {
		s.etcdReachable = err == nil
		s.etcdErr = ""
		if err != nil {
			s.etcdErr = err.Error()
		}
	})
}

func (s *state) setLeader(cands []election.Candidate) {
	var l *LeaderStatus
	if len(cands) > 0 {
		l = &LeaderStatus{ID: cands[0].ID, Addr: cands[0].Addr, FencingToken: cands[0].FencingToken()}
	}
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.ID
	}
	s.update(func(s *state) { s.leader, s.candidates = l, ids })
}

// followInfo is what the follower needs: the leader, the role and phase.
func (s *state) followInfo() (*LeaderStatus, role.Role, role.Phase) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var l *LeaderStatus
	if s.leader != nil {
		c := *s.leader
		l = &c
	}
	return l, s.role, s.phase
}

func (s *state) candidatesSnapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.candidates...)
}

func (s *state) leaderID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leader == nil {
		return ""
	}
	return s.leader.ID
}

// renewed records one lease renewal attempt.
func (s *state) renewed(err error) {
	if err != nil {
		s.metrics.keepaliveFailures.Inc()
	}
	s.setEtcd(err)
}

func (s *state) recordHook(r hooks.Result) {
	s.metrics.observeHook(r)
	h := HookStatus{Result: r}
	if r.Err != nil {
		h.Error = r.Err.Error()
	}
	s.update(func(s *state) { s.hooks[r.Hook] = h })
}

func (s *state) transition(to role.Role, reason role.Reason) {
	s.metrics.transitions.WithLabelValues(string(reason)).Inc()
	s.update(func(s *state) {
		s.lastTransition = &Transition{Time: time.Now(), From: s.role, To: to, Reason: reason}
		s.role = to
	})
}

// servingPrimary is true only while primary, inside the safe deadline and
// with a tenure that is not lost: a lost tenure stops answering at once,
// before the state machine has begun to step down.
func (s *state) servingPrimary(now time.Time) bool { return s.servingToken(now) != 0 }

// servingToken is the fencing token of the tenure being served (as
// servingPrimary), 0 when not serving.
func (s *state) servingToken(now time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != role.PhasePrimary || s.candidacy == nil || s.tenure == nil || !now.Before(s.candidacy.SafeDeadline()) {
		return 0
	}
	select {
	case <-s.tenure.Lost():
		return 0
	default:
		return s.tenure.FencingToken()
	}
}

// readableStandby is what GET /standby reports: a standby that holds a
// lease, is not degraded and whose app is healthy can serve reads, whether
// or not it campaigns right now (a pause or a switchover changes nothing
// for readers).
func (s *state) readableStandby() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.role != role.Standby || !s.running || s.demoteFailed || s.candidacy == nil || !s.appHealthy() {
		return false
	}
	select {
	case <-s.candidacy.Lost():
		return false // etcd may be gone: this replica's view is stale
	default:
	}
	switch s.phase {
	case role.PhaseCampaigning, role.PhasePaused, role.PhaseYielding, role.PhaseObserving:
		return true
	}
	return false
}

// alive is what GET /livez reports: the state machine's loop runs, whatever
// its role or a failing demote.
func (s *state) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

func (s *state) healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running && !s.demoteFailed
}

func (s *state) snapshot(id, electionName string, now time.Time) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		ID:             id,
		Election:       electionName,
		Role:           s.role,
		Phase:          s.phase,
		Healthy:        s.running && !s.demoteFailed,
		AppHealthy:     s.appHealthy(),
		Degraded:       s.demoteFailed,
		Paused:         s.control.Paused,
		FencingToken:   s.fencingToken,
		Etcd:           EtcdStatus{Reachable: s.etcdReachable, Error: s.etcdErr},
		LastTransition: s.lastTransition,
		Hooks:          make(map[string]HookStatus, len(s.hooks)),
	}
	if s.leader != nil {
		l := *s.leader
		st.Leader = &l
	}
	if c := s.candidacy; c != nil {
		st.Lease = &LeaseStatus{
			ID:                    election.LeaseHex(c.LeaseID()),
			TTLSeconds:            c.TTL().Seconds(),
			SecondsToSafeDeadline: c.SafeDeadline().Sub(now).Seconds(),
		}
	}
	for k, v := range s.hooks {
		st.Hooks[k] = v
	}
	return st
}
