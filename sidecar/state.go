package sidecar

import (
	"slices"
	"sync"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// state is the replica's state: what the state machine shares with the
// HTTP API, the watches, the member publisher and the follower. It is the
// one owner of its lock: every read and write is a method here, so no
// caller holds mu across anything slow.
type state struct {
	mu             sync.Mutex
	running        bool
	role           role.Role
	phase          role.Phase
	demoteFailed   bool
	candidacy      candidacy            // nil while no lease is held
	tenure         tenure               // the tenure being served; nil while none
	controlKnown   bool                 // the control keys were read at least once
	resignFor      int64                // the tenure a pending POST /resign is for; 0: none
	controlFailing bool                 // the control watch's last read failed
	leaderFailing  bool                 // the leader watch's last read failed
	campaigners    []election.Candidate // in campaign order, from the leader watch
	yields         yieldBackOff         // the yield back-off per target (yield.go)
	namedFrom      time.Time            // a switchover named this replica as target, from (its at) ...
	namedUntil     time.Time            // ... until then
	control        election.Control
	leader         *LeaderStatus
	etcdReachable  bool
	etcdErr        string
	lastTransition *Transition
	hooks          map[string]HookStatus
	started        time.Time
	grantedTTL     time.Duration // the TTL etcd granted, when it differs from --ttl; 0: none

	// Set before Run and never changed, so not guarded by mu.
	metrics *metrics  // safe for concurrent use
	health  appHealth // the app's health, stored here once
	// changed wakes the member publisher after every update (buffered 1,
	// latest wins), so a phase change is published at once, not at the
	// next refresh tick.
	changed chan struct{}
}

// newState is a standby's state before Run; electionName and id label its
// metrics.
func newState(electionName, id string) *state {
	st := &state{
		role:    role.Standby,
		phase:   role.PhaseStarting,
		hooks:   map[string]HookStatus{},
		health:  alwaysHealthy{},
		started: time.Now(),
		changed: make(chan struct{}, 1),
	}
	st.metrics = newMetrics(st, electionName, id)
	return st
}

// update changes the state under the lock and wakes the member publisher.
func (s *state) update(fn func(*state)) {
	s.mu.Lock()
	defer wake(s.changed) // after the unlock below
	defer s.mu.Unlock()
	fn(s)
}

// wake does a non-blocking send on a buffered(1) wake-up channel.
func wake(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// setPhase is the only writer of the phase.
func (s *state) setPhase(p role.Phase) { s.update(func(s *state) { s.phase = p }) }

func (s *state) setRunning(running bool) { s.update(func(s *state) { s.running = running }) }

// setCandidacy records the lease held now (nil: none).
func (s *state) setCandidacy(c candidacy) { s.update(func(s *state) { s.candidacy = c }) }

// beginTenure records the tenure being served.
func (s *state) beginTenure(t tenure) {
	s.update(func(s *state) { s.tenure = t })
}

// endTerm forgets the lease and the tenure: nothing is held until the next
// grant.
func (s *state) endTerm() {
	s.update(func(s *state) { s.candidacy, s.tenure = nil, nil })
}

// setTTLInEffect records a TTL etcd granted other than --ttl.
func (s *state) setTTLInEffect(ttl time.Duration) { s.update(func(s *state) { s.grantedTTL = ttl }) }

// ttlInEffect is the TTL etcd granted when it differs from --ttl; 0 otherwise.
func (s *state) ttlInEffect() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grantedTTL
}

func (s *state) setDemoteFailed(failed bool) {
	s.update(func(s *state) { s.demoteFailed = failed })
}

func (s *state) setEtcd(err error) {
	s.update(func(s *state) {
		s.etcdReachable = err == nil
		s.etcdErr = ""
		if err != nil {
			s.etcdErr = err.Error()
		}
	})
}

// etcdOK reports whether etcd answered the last request.
func (s *state) etcdOK() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etcdReachable
}

// setControl records a read of the control keys.
func (s *state) setControl(c election.Control) {
	s.update(func(s *state) { s.control, s.controlKnown = c, true })
}

// controlRead is the control state and whether it was read at least once.
func (s *state) controlRead() (election.Control, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.control, s.controlKnown
}

// watchFailing records a watch's read (err nil: it worked) and reports
// whether it was failing before; which picks the leader or control watch.
func (s *state) watchFailing(which string, err error) (was bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	failing := &s.controlFailing
	if which == "leader" {
		failing = &s.leaderFailing
	}
	was = *failing
	*failing = err != nil
	return was
}

func (s *state) setLeader(cands []election.Candidate) {
	var l *LeaderStatus
	if len(cands) > 0 {
		l = &LeaderStatus{ID: cands[0].ID, Addr: cands[0].Addr, FencingToken: cands[0].FencingToken()}
	}
	now := time.Now()
	s.update(func(s *state) {
		s.leader, s.campaigners = l, cands
		leader := ""
		if l != nil {
			leader = l.ID
		}
		s.yields.observeLeader(leader, now)
	})
}

// campaignersSnapshot is the candidates in campaign order, as the leader
// watch last saw them.
func (s *state) campaignersSnapshot() []election.Candidate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]election.Candidate(nil), s.campaigners...)
}

// nameTarget remembers a switchover request naming this replica as its
// target, in effect from its at until expires: the old primary clears it
// once it has stepped down, maybe before this replica's win is checked.
// The latest request seen replaces an earlier one.
func (s *state) nameTarget(from, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.namedFrom, s.namedUntil = from, expires
}

// namedTarget reports whether a switchover named this replica as its
// target and is in effect at now.
func (s *state) namedTarget(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !now.Before(s.namedFrom) && now.Before(s.namedUntil)
}

// yieldAllowed reports whether this replica may yield the role to id now
// (see yieldBackOff).
func (s *state) yieldAllowed(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.yields.allowed(id, now)
}

// yielded records a yield of kind (yieldAtWin, yieldFailback) to id; it
// returns the back-off it arms.
func (s *state) yielded(id, kind string, now time.Time) time.Duration {
	s.metrics.yields.WithLabelValues(kind).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.yields.yielded(id, now)
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

func (s *state) leaderID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leader == nil {
		return ""
	}
	return s.leader.ID
}

// leadsNow reports whether r names the tenure that leads now, as the
// leader watch last saw it: its id and fencing token.
func (s *state) leadsNow(r *election.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leader
	return r != nil && l != nil && r.From != "" && r.From == l.ID && r.FencingToken == l.FencingToken
}

// isCandidate reports whether id campaigns now, as the leader watch last
// saw.
func (s *state) isCandidate(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.campaigners, func(c election.Candidate) bool { return c.ID == id })
}

// nextCandidate is the id second in campaign order: who wins if the
// leader resigns.
func (s *state) nextCandidate() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.campaigners) < 2 {
		return ""
	}
	return s.campaigners[1].ID
}

// requestResign records a POST /resign for the tenure with this token.
func (s *state) requestResign(token int64) { s.update(func(s *state) { s.resignFor = token }) }

// takeResign clears a pending POST /resign and reports whether it was made
// for the tenure with this fencing token; one made for an earlier tenure
// is dropped.
func (s *state) takeResign(token int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	pending := s.resignFor
	s.resignFor = 0
	return pending != 0 && pending == token
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

// appHealthy is the app's health now (always, without a health check).
func (s *state) appHealthy() bool { return s.health.Healthy() }

// servingPrimary is true only while primary, inside the safe deadline and
// with a tenure that is not lost: a lost tenure stops answering at once,
// before the state machine has begun to step down.
func (s *state) servingPrimary(now time.Time) bool { return s.servingToken(now) != 0 }

// servingToken is the fencing token of the tenure being served (as
// servingPrimary), 0 when not serving.
func (s *state) servingToken(now time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servingTokenLocked(now)
}

// servingTokenLocked is servingToken; mu is held.
func (s *state) servingTokenLocked(now time.Time) int64 {
	if s.phase != role.PhasePrimary || s.candidacy == nil || s.tenure == nil || !now.Before(s.candidacy.SafeDeadline()) {
		return 0
	}
	if s.tenure.Context().Err() != nil {
		return 0
	}
	return s.tenure.FencingToken()
}

// fencing is servingToken and the held tenure's token (tenureToken), read
// under one lock so that a 200 from /primary and its header agree.
func (s *state) fencing(now time.Time) (serving, held int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servingTokenLocked(now), s.tenureToken()
}

// heldToken is the fencing token of the tenure held, 0 while none.
func (s *state) heldToken() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenureToken()
}

// degraded reports a failed demote being retried (/status degraded).
func (s *state) degraded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.demoteFailed
}

// tenureToken is the fencing token of the tenure held, 0 while none; mu is
// held.
func (s *state) tenureToken() int64 {
	if s.tenure == nil {
		return 0
	}
	return s.tenure.FencingToken()
}

// secondsToSafeDeadline is the time left on the lease; 0 without one.
func (s *state) secondsToSafeDeadline(now time.Time) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.candidacy == nil {
		return 0
	}
	return s.candidacy.SafeDeadline().Sub(now).Seconds()
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

// memberRecord is the record the state calls for, and the lease to put it
// on (0: no lease now).
func (s *state) memberRecord(id, version, addr string) (int64, election.Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.candidacy == nil {
		return 0, election.Member{}
	}
	since := s.started
	if s.lastTransition != nil {
		since = s.lastTransition.Time
	}
	m := election.Member{
		ID:      id,
		Role:    s.role,
		Phase:   s.phase,
		Healthy: s.appHealthy(),
		Since:   since.UTC().Truncate(time.Second),
		Version: version,
		Addr:    addr,
	}
	if s.role == role.Primary {
		// With phase primary, this tells followers the promote has ended.
		m.FencingToken = s.tenureToken()
	}
	return s.candidacy.LeaseID(), m
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
		FencingToken:   s.tenureToken(),
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
