package sidecar

import (
	"context"
	"time"

	"github.com/leaderd/leaderd/election"
)

// memberRefresh is how often the member record is compared with the state
// and republished when it changed: cheap local work, and it bounds how
// stale `leaderd status` can be.
const memberRefresh = 500 * time.Millisecond

// publishMembers keeps this replica's member record (role, phase, app
// health, version, address) in etcd on its current lease, until ctx ends.
// It runs beside the state machine and only reads its state, so a slow
// etcd never delays a hook; a lost lease takes the record with it.
func (s *Sidecar) publishMembers(ctx context.Context, el elector) {
	tick := time.NewTicker(memberRefresh)
	defer tick.Stop()
	var published election.Member
	var publishedLease int64
	failing := false
	for {
		lease, m := s.memberRecord()
		if lease != 0 && (lease != publishedLease || m != published) {
			pctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
			err := el.PublishMember(pctx, lease, m)
			cancel()
			switch {
			case err == nil:
				published, publishedLease, failing = m, lease, false
			case ctx.Err() != nil:
				return
			case !failing:
				// Once per outage: the lease guard reports etcd's state.
				s.logger.Warn("publishing the member record failed; retrying", "err", err)
				failing = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// memberRecord is the record the state calls for, and the lease to put it
// on (0: no lease now).
func (s *Sidecar) memberRecord() (int64, election.Member) {
	st := s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.candidacy == nil {
		return 0, election.Member{}
	}
	since := st.started
	if st.lastTransition != nil {
		since = st.lastTransition.Time
	}
	return st.candidacy.LeaseID(), election.Member{
		ID:      s.cfg.ID,
		Role:    st.role,
		Phase:   st.phase,
		Healthy: st.appHealthy(),
		Since:   since.UTC().Truncate(time.Second),
		Version: s.cfg.Version,
		Addr:    s.cfg.Advertise,
	}
}
