package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
)

const (
	electionName = "bench"
	keyPrefix    = "/leaderd" // leaderd's default --prefix
)

// Named bounds. Generous for a loaded two-core machine, short enough that
// a stuck round is reported instead of hanging the run.
const (
	// steadyTimeout bounds the wait for one primary and two campaigning
	// standbys. After a cut-off heal, gRPC may wait out a reconnect backoff.
	steadyTimeout = 60 * time.Second
	// pollInterval paces the steady-state polling of /status and etcd.
	pollInterval = 20 * time.Millisecond
	// exitTimeout bounds a stopped replica's exit: demote (1s) plus its etcd
	// clean-up (2s per call) with room to spare.
	exitTimeout = 15 * time.Second
	// closeGrace is how long each replica gets to stop gracefully at the end.
	closeGrace = 10 * time.Second
	// callTimeout bounds each request the bench makes to etcd.
	callTimeout = 2 * time.Second
)

// cluster is the embedded etcd, one fault proxy per replica id, and the
// replicas themselves. A replica restarted under the same id reuses its
// proxy, so faults stay attached to the id.
type cluster struct {
	o       options
	srv     *etcdtest.Server
	client  *clientv3.Client
	store   *election.Store // the election's keys, through client
	set     *replicas.Set
	ids     []string
	proxies map[string]*etcdtest.Proxy
	reps    map[string]*replicas.Replica
}

func newCluster(ctx context.Context, dir, binary string, o options) (c *cluster, err error) {
	c = &cluster{o: o, ids: []string{"r1", "r2", "r3"}, proxies: map[string]*etcdtest.Proxy{}, reps: map[string]*replicas.Replica{}}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.srv, err = etcdtest.StartServer(ctx, etcdtest.Options{}); err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	if c.client, err = clientv3.New(etcdtest.ClientConfig(c.srv.Endpoint())); err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	c.store = election.NewStore(c.client, keyPrefix, electionName)
	if c.set, err = replicas.NewSet(binary, dir, electionName, o.ttl, o.demoteTimeout); err != nil {
		return nil, fmt.Errorf("replica set: %w", err)
	}
	for _, id := range c.ids {
		if c.proxies[id], err = etcdtest.NewProxy(c.srv.Endpoint()); err != nil {
			return nil, fmt.Errorf("proxy for %s: %w", id, err)
		}
	}
	for _, id := range c.ids {
		if err = c.start(id); err != nil {
			return nil, err
		}
	}
	if _, err = c.waitSteady(ctx, steadyTimeout); err != nil {
		return nil, fmt.Errorf("first election: %w", err)
	}
	return c, nil
}

// close stops the replicas while etcd is still up (so a primary can demote
// and resign), then the proxies and etcd. Bounded; safe on a partial cluster.
func (c *cluster) close() {
	for _, p := range c.proxies {
		p.Heal()
	}
	if c.set != nil {
		c.set.Close(closeGrace)
	}
	if c.client != nil {
		_ = c.client.Close()
	}
	for _, p := range c.proxies {
		p.Close()
	}
	if c.srv != nil {
		c.srv.Close()
	}
}

func (c *cluster) start(id string) error {
	r, err := c.set.Start(id, c.proxies[id].Endpoint())
	if err != nil {
		return err
	}
	c.reps[id] = r
	return nil
}

func (c *cluster) running(id string) bool {
	r := c.reps[id]
	if r == nil {
		return false
	}
	select {
	case <-r.Done():
		return false
	default:
		return true
	}
}

func (c *cluster) timelineLen() (int, error) {
	evs, err := c.set.Timeline()
	return len(evs), err
}

// waitSteady waits until every replica runs, exactly one is a serving
// primary, the others are healthy campaigning standbys holding a lease,
// and etcd holds exactly one candidate key per replica with the primary's
// first. It returns the primary.
func (c *cluster) waitSteady(ctx context.Context, timeout time.Duration) (*replicas.Replica, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last string
	for {
		primary, why, err := c.steady(ctx)
		if err != nil {
			return nil, err
		}
		if primary != nil {
			return primary, nil
		}
		last = why
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no steady state after %s (%w): %s", timeout, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// steady checks once. A nil primary with a reason means "not yet"; an
// error means waiting is pointless (a replica exited).
func (c *cluster) steady(ctx context.Context) (*replicas.Replica, string, error) {
	var primary *replicas.Replica
	var states []string
	notYet := ""
	for _, id := range c.ids {
		if !c.running(id) {
			r := c.reps[id]
			if r == nil {
				return nil, "", fmt.Errorf("replica %s was never started", id)
			}
			code, _ := r.Wait(0)
			return nil, "", fmt.Errorf("replica %s exited unexpectedly (exit code %d; see %s.log)", id, code, id)
		}
		r := c.reps[id]
		st, err := r.Status(ctx)
		if err != nil {
			states = append(states, id+"=no-status")
			notYet = "status unavailable"
			continue
		}
		states = append(states, fmt.Sprintf("%s=%s/%s", id, st.Role, st.Phase))
		switch {
		case !st.Healthy || st.Lease == nil || !st.Etcd.Reachable:
			notYet = id + " not healthy, without a lease or without etcd"
		case st.Role == role.Primary && st.Phase == role.PhasePrimary:
			if primary != nil {
				notYet = "two primaries"
			}
			primary = r
		case st.Role == role.Standby && st.Phase == role.PhaseCampaigning:
		default:
			notYet = id + " in transition"
		}
	}
	gctx, cancel := context.WithTimeout(ctx, callTimeout)
	cands, _, err := c.store.Candidates(gctx)
	cancel()
	var ids []string
	for _, cd := range cands {
		ids = append(ids, cd.ID)
	}
	desc := strings.Join(states, " ") + " candidates=[" + strings.Join(ids, ",") + "]"
	switch {
	case err != nil:
		return nil, desc + " (etcd: " + err.Error() + ")", nil
	case notYet != "":
		return nil, desc + " (" + notYet + ")", nil
	case primary == nil:
		return nil, desc + " (no primary)", nil
	case len(cands) != len(c.ids) || cands[0].ID != primary.ID:
		return nil, desc + " (candidate keys do not match)", nil
	}
	return primary, "", nil
}

// recover brings the cluster back to a steady state after a failed round:
// heal every proxy, restart what is not running; if that is not enough,
// restart every replica.
func (c *cluster) recover(ctx context.Context) error {
	for _, p := range c.proxies {
		p.Heal()
	}
	for _, id := range c.ids {
		if !c.running(id) {
			if err := c.start(id); err != nil {
				return err
			}
		}
	}
	_, err := c.waitSteady(ctx, steadyTimeout)
	if err == nil || ctx.Err() != nil {
		return err
	}
	for _, id := range c.ids {
		_ = c.reps[id].Stop(exitTimeout)
		if err := c.start(id); err != nil {
			return err
		}
	}
	if _, err := c.waitSteady(ctx, steadyTimeout); err != nil {
		return fmt.Errorf("after restarting every replica: %w", err)
	}
	return nil
}

// waitEvent waits up to timeout for the first timeline event from index
// from on that match accepts. Its error lists the events since from, not
// the whole timeline.
func (c *cluster) waitEvent(ctx context.Context, timeout time.Duration, what string, from int, match func(timeline.Event) bool) (timeline.Event, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ev, err := c.set.WaitFor(wctx, func(evs []timeline.Event) int {
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				return i
			}
		}
		return -1
	})
	if err == nil {
		return ev, nil
	}
	if wctx.Err() == nil {
		return ev, err
	}
	var b strings.Builder
	if evs, terr := c.set.Timeline(); terr == nil && from <= len(evs) {
		for _, e := range evs[from:] {
			b.WriteString("; " + e.String())
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return ev, ctx.Err()
	}
	return ev, fmt.Errorf("no %s within %s; timeline since the round began: [%s]", what, timeout, strings.TrimPrefix(b.String(), "; "))
}

// Event matchers.

func demoteEnd(id string) func(timeline.Event) bool {
	return func(e timeline.Event) bool { return e.Is(hooks.Demote, timeline.PhaseEnd) && e.ID == id }
}

func promoteStartOther(than string) func(timeline.Event) bool {
	return func(e timeline.Event) bool { return e.Is(hooks.Promote, timeline.PhaseStart) && e.ID != than }
}
