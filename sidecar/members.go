package sidecar

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/leaderd/leaderd/election"
)

// memberRefresh is how often the member record is compared with the state
// and republished when it changed, besides the wake-ups on a change: cheap
// local work, and it bounds how stale `leaderd status` can be.
const memberRefresh = 500 * time.Millisecond

// publishMembers keeps this replica's member record (role, phase, app
// health, version, address, and the fencing token while primary) in etcd
// on its current lease, until ctx ends. It runs beside the state machine
// and only reads its state, so a slow etcd never delays a hook; a lost
// lease takes the record with it. A record deleted while its lease lives
// (by hand, say) is put back: one watch of its own key tells.
func (s *Sidecar) publishMembers(ctx context.Context, el elector) {
	deleted := make(chan struct{}, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		el.WatchMember(ctx, s.cfg.ID, func(m *election.Member, err error) {
			if err == nil && m == nil {
				wake(deleted)
			}
		})
	}()
	defer func() { <-watched }()

	tick := time.NewTicker(memberRefresh)
	defer tick.Stop()
	var published election.Member
	var publishedLease int64
	var goneLease int64 // revoked under the publisher: wait for the next one
	failing := false
	for {
		lease, m := s.memberRecord()
		if lease != 0 && lease != goneLease && (lease != publishedLease || m != published) {
			pctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
			err := el.PublishMember(pctx, lease, m)
			cancel()
			switch {
			case err == nil:
				published, publishedLease, failing = m, lease, false
			case ctx.Err() != nil:
				return
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				// The term is ending (its revoke took the record); the
				// state machine moves to a new lease.
				goneLease = lease
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
		case <-s.state.changed:
		case <-deleted:
			// Put it again; on a lease that is gone, the put fails and is
			// skipped as above.
			published, publishedLease = election.Member{}, 0
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
	m := election.Member{
		ID:      s.cfg.ID,
		Role:    st.role,
		Phase:   st.phase,
		Healthy: st.appHealthy(),
		Since:   since.UTC().Truncate(time.Second),
		Version: s.cfg.Version,
		Addr:    s.cfg.Advertise,
	}
	if st.role == RolePrimary {
		// With phase primary, this tells followers the promote has ended.
		m.FencingToken = st.fencingToken
	}
	return st.candidacy.LeaseID(), m
}
