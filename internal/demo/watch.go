package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// statusPollInterval is how often each replica's /status is read. Short
// enough to see most phases; a promote hook of a few milliseconds may fall
// between two polls, which the timeline still shows.
const statusPollInterval = 100 * time.Millisecond

// roleWatch polls the replicas' /status and prints each change of state.
type roleWatch struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// watchRoles starts one poller per replica; each ends when its replica
// exits, ctx ends or stop is called.
func watchRoles(ctx context.Context, p *printer, rs []*replicas.Replica) *roleWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &roleWatch{cancel: cancel}
	for _, r := range rs {
		w.wg.Go(func() { watchReplica(ctx, p, r) })
	}
	return w
}

// stop ends the pollers and waits for them. Idempotent.
func (w *roleWatch) stop() {
	w.cancel()
	w.wg.Wait()
}

func watchReplica(ctx context.Context, p *printer, r *replicas.Replica) {
	tick := time.NewTicker(statusPollInterval)
	defer tick.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.Done():
			how := "killed"
			if code, _ := r.Wait(time.Second); code >= 0 {
				how = fmt.Sprintf("exited with code %d", code)
			}
			if last == "" {
				p.event(r.ID, "gone (process %s)", how)
			} else {
				p.event(r.ID, "%s -> gone (process %s)", last, how)
			}
			return
		case <-tick.C:
		}
		st, err := r.Status(ctx)
		if err != nil {
			continue // not listening yet, or on its way out
		}
		now := stateLabel(st)
		if now == last {
			continue
		}
		if last == "" {
			p.event(r.ID, "%s%s", now, stateDetail(last, st))
		} else {
			p.event(r.ID, "%s -> %s%s", last, now, stateDetail(last, st))
		}
		last = now
	}
}

// stateLabel names what a replica is doing, in the words of the roles:
// a campaigning replica is a standby.
func stateLabel(st sidecar.Status) string {
	label := string(st.Phase)
	switch st.Phase {
	case role.PhaseCampaigning:
		label = string(role.Standby)
	case "":
		label = string(st.Role)
	}
	if st.Degraded {
		label += "(degraded)"
	}
	return label
}

// stateDetail explains a new state in a few words.
// prev is the label stateLabel gave the state before.
func stateDetail(prev string, st sidecar.Status) string {
	switch st.Phase {
	case role.PhaseStarting:
		return " (start-up demote hook)"
	case role.PhaseConnecting:
		return " (waiting for etcd)"
	case role.PhaseCampaigning:
		if t := st.LastTransition; prev == string(role.PhaseDemoting) && t != nil && t.To == role.Standby {
			return fmt.Sprintf(" (demoted: %s)", t.Reason)
		}
		return " (campaigning)"
	case role.PhasePromoting:
		return fmt.Sprintf(" (elected, fencing token %d; promote hook running)", st.FencingToken)
	case role.PhasePrimary:
		if prev == string(role.PhasePromoting) {
			return fmt.Sprintf(" (promote hook done, fencing token %d)", st.FencingToken)
		}
		return fmt.Sprintf(" (elected, fencing token %d)", st.FencingToken)
	case role.PhaseDemoting:
		return " (demote hook running)"
	}
	return ""
}
