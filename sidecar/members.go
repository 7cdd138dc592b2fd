package sidecar

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/leaderd/leaderd/election"
)

// memberRefresh is how often the member record is compared with the state
// and republished when it changed, besides the wake-ups on a change: cheap
// local work, and it bounds how stale `leaderd status` can be.
const memberRefresh = 500 * time.Millisecond

// A record put back after someone else changed or deleted it (a repair)
// is not put back again before memberRepairMin, doubling up to
// memberRepairMax while they keep at it (another leaderd with the same
// id, a script): never a tight loop. The pace relaxes after
// memberRepairMax without a repair.
const (
	memberRepairMin = 250 * time.Millisecond
	memberRepairMax = 5 * time.Second
)

// publishMembers keeps this replica's member record (role, phase, app
// health, version, address, and the fencing token while primary) in etcd
// on its current lease, until ctx ends. It runs beside the state machine
// and only reads its state, so a slow etcd never delays a hook; a lost
// lease takes the record with it. A record deleted or changed by someone
// else while its lease lives (by hand, say, or garbage) is put back: one
// watch of its own key tells.
func (s *Sidecar) publishMembers(ctx context.Context, el elector) {
	var stored storedRecord
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		el.WatchMember(ctx, s.cfg.ID, func(m *election.Member, err error) {
			if err == nil {
				stored.set(m)
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
	var lastRepair, nextRepair time.Time
	repairGap := memberRepairMin
	for {
		lease, m := s.state.memberRecord(s.cfg.ID, s.cfg.Version, s.cfg.Advertise)
		m.Priority = s.cfg.Priority
		own := lease != publishedLease || m != published // this replica's own change
		repair := false
		if !own && lease != 0 {
			if st, known := stored.get(); known && !sameRecord(st, published, publishedLease) {
				repair = !time.Now().Before(nextRepair)
			}
		}
		if lease != 0 && lease != goneLease && (own || repair) {
			pctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
			err := el.PublishMember(pctx, lease, m)
			cancel()
			switch {
			case err == nil:
				published, publishedLease, failing = m, lease, false
				stored.forget() // learn it afresh from the watch
				if repair {
					if time.Since(lastRepair) > memberRepairMax {
						repairGap = memberRepairMin
						s.logger.Warn("the member record in etcd was deleted or changed by someone else; put it back")
					}
					lastRepair, nextRepair = time.Now(), time.Now().Add(repairGap)
					repairGap = min(2*repairGap, memberRepairMax)
				}
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
		case <-stored.changed():
		}
	}
}

// storedRecord is this replica's record as the member watch last read it.
type storedRecord struct {
	mu     sync.Mutex
	m      *election.Member // nil: none, or not a record
	known  bool             // read since the last publish
	wakeCh chan struct{}    // buffered 1: the watch read it
	once   sync.Once
}

func (r *storedRecord) ch() chan struct{} {
	r.once.Do(func() { r.wakeCh = make(chan struct{}, 1) })
	return r.wakeCh
}

func (r *storedRecord) set(m *election.Member) {
	r.mu.Lock()
	r.m, r.known = m, true
	r.mu.Unlock()
	wake(r.ch())
}

func (r *storedRecord) get() (*election.Member, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m, r.known
}

func (r *storedRecord) forget() {
	r.mu.Lock()
	r.known = false
	r.mu.Unlock()
}

func (r *storedRecord) changed() <-chan struct{} { return r.ch() }

// sameRecord reports whether the stored record st is the one published on
// lease.
func sameRecord(st *election.Member, published election.Member, lease int64) bool {
	if st == nil || st.LeaseID != lease || !st.Since.Equal(published.Since) {
		return false
	}
	got := *st
	got.LeaseID, got.LeaseSeconds, got.Since = 0, 0, published.Since
	return got == published
}
