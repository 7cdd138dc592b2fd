package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/sidecar"
)

// Pacing of `leaderd status --watch`.
const (
	// watchCoalesce folds a burst of changes into one redraw: at most one
	// redraw per interval.
	watchCoalesce = 100 * time.Millisecond
	// watchCheck is how often a quiet watch checks that etcd still answers:
	// a watch on a dead connection just stays silent, and a frozen screen
	// would look like a healthy election.
	watchCheck = 10 * time.Second
	// watchRetryMax caps the backoff between attempts to re-establish.
	watchRetryMax = 10 * time.Second
)

// readStatus reads the election's candidates (the first is the leader) and
// its members. It also returns the revision of the candidates read, from
// which a watch misses nothing.
func readStatus(ctx context.Context, store *election.Store) (statusReport, int64, error) {
	cands, rev, err := store.Candidates(ctx)
	if err != nil {
		return statusReport{}, 0, err
	}
	members, err := store.Members(ctx)
	if err != nil {
		return statusReport{}, 0, err
	}
	control, _, err := store.ReadControl(ctx)
	if err != nil {
		return statusReport{}, 0, err
	}
	r := statusReport{
		Paused:       control.Paused,
		Election:     store.Election(),
		Candidates:   make([]statusCandidate, 0, len(cands)),
		Members:      make([]statusMember, 0, len(members)),
		Availability: election.Availability(members),
		Registered:   len(members),
	}
	for _, c := range cands {
		r.Candidates = append(r.Candidates, statusCandidate{
			ID:             c.ID,
			Addr:           c.Addr,
			Since:          c.Since,
			LeaseID:        election.LeaseHex(c.LeaseID),
			CreateRevision: c.CreateRevision,
			Priority:       c.Priority,
		})
	}
	if len(cands) > 0 {
		r.Leader = &statusLeader{ID: cands[0].ID, FencingToken: cands[0].FencingToken()}
	}
	r.Switchover = switchoverStatus(control.Switchover, cands, time.Now())
	for _, m := range members {
		sm := statusMember{
			ID:               m.ID,
			Role:             m.Role,
			Phase:            m.Phase,
			Healthy:          m.Healthy,
			Since:            m.Since,
			Version:          m.Version,
			Addr:             m.Addr,
			Priority:         m.Priority,
			LeaseSecondsLeft: m.LeaseSeconds,
		}
		if m.LeaseID != 0 {
			sm.LeaseID = election.LeaseHex(m.LeaseID)
		}
		if r.Leader != nil && m.ID == r.Leader.ID {
			sm.FencingToken = r.Leader.FencingToken
		}
		if m.Healthy {
			r.Healthy++
		}
		r.Members = append(r.Members, sm)
	}
	return r, rev, nil
}

// fetchStatus connects to etcd and reads the election, each step bounded.
func fetchStatus(cfg sidecar.Config) (statusReport, error) {
	endpoints := strings.Join(cfg.Endpoints, ",")
	store, err := openStore(cfg)
	if err != nil {
		return statusReport{}, etcdError(endpoints, err)
	}
	defer store.Client().Close()
	ctx, cancel := context.WithTimeout(context.Background(), statusCallTimeout)
	defer cancel()
	report, _, err := readStatus(ctx, store)
	if err != nil {
		return statusReport{}, etcdError(endpoints, err)
	}
	return report, nil
}

// statusWatch is the core of `leaderd status --watch`, free of signals and
// process state so tests can drive it with a context and a buffer.
type statusWatch struct {
	store       *election.Store
	json        bool          // one compact JSON object per line instead of the text
	out, errOut io.Writer     // redraws; one line per etcd trouble
	endpoints   string        // for messages
	check       time.Duration // liveness check of a quiet watch; 0: watchCheck
	callTimeout time.Duration // bound of each read; 0: statusCallTimeout

	terminal bool // out is a terminal: clear the screen between redraws
	drawn    int  // redraws so far
	// turn is when the switchover drawn changes state by the clock alone
	// (its at, its expiry): redrawn then; zero: never.
	turn time.Time
}

// run draws the status, then redraws it after every change under
// <prefix>/<election>/ until ctx ends, and returns nil then. It returns an
// error only when the first read fails (etcd unreachable at the start).
// Later failures are reported on errOut and retried with backoff.
func (s *statusWatch) run(ctx context.Context) error {
	s.terminal = !s.json && isTerminal(s.out)
	report, rev, err := s.read(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := s.draw(report); err != nil {
		return err
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = 500*time.Millisecond, watchRetryMax, 0
	bo.Reset()
	for {
		err := s.follow(ctx, rev)
		if ctx.Err() != nil {
			return nil
		}
		// The watch broke or etcd stopped answering: say so, wait, read
		// again and watch from there.
		for {
			wait := bo.NextBackOff()
			fmt.Fprintf(s.errOut, "leaderd status: %s; retrying in %s\n", oneLine(err.Error()), wait.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			if report, rev, err = s.read(ctx); err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
		}
		bo.Reset()
		if err := s.draw(report); err != nil {
			return err
		}
	}
}

// follow watches the election's keys from rev+1 and redraws after each
// burst of changes. It returns when ctx ends, or with the reason the watch
// (or a re-read) failed.
func (s *statusWatch) follow(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.store.Client().Watch(wctx, s.store.Root(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	defer func() {
		cancel()
		for range wch {
			// drain until the watcher closes so nothing is left behind
		}
	}()
	redraw := time.NewTimer(time.Hour)
	redraw.Stop()
	defer redraw.Stop()
	pending := false
	every := s.check
	if every <= 0 {
		every = watchCheck
	}
	check := time.NewTicker(every)
	defer check.Stop()
	turn := time.NewTimer(time.Hour)
	turn.Stop()
	defer turn.Stop()
	var armed time.Time // the turn the timer is set for
	for {
		if !s.turn.Equal(armed) {
			armed = s.turn
			turn.Stop()
			if !armed.IsZero() {
				turn.Reset(time.Until(armed))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wr, ok := <-wch:
			switch {
			case !ok:
				return s.etcdErr(errors.New("watch closed"))
			case wr.Err() != nil:
				return s.etcdErr(wr.Err())
			}
			if len(wr.Events) > 0 && !pending {
				// Trailing edge: the redraw shows the whole burst.
				pending = true
				redraw.Reset(watchCoalesce)
			}
		case <-turn.C:
			armed, s.turn = time.Time{}, time.Time{}
			if !pending {
				pending = true
				redraw.Reset(0)
			}
		case <-redraw.C:
			pending = false
			report, _, err := s.read(ctx)
			if err != nil {
				return err
			}
			if err := s.draw(report); err != nil {
				return err
			}
			check.Reset(every)
		case <-check.C:
			// A watch on a lost connection stays silent: make sure etcd
			// still answers, so the screen does not show stale data as
			// current.
			cctx, ccancel := context.WithTimeout(ctx, s.timeout())
			_, err := s.store.Client().Get(cctx, s.store.Root(), clientv3.WithPrefix(), clientv3.WithCountOnly())
			ccancel()
			if err != nil && ctx.Err() == nil {
				return s.etcdErr(err)
			}
		}
	}
}

// read is one bounded readStatus.
func (s *statusWatch) read(ctx context.Context) (statusReport, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	r, rev, err := readStatus(rctx, s.store)
	if err != nil {
		return statusReport{}, 0, s.etcdErr(err)
	}
	return r, rev, nil
}

func (s *statusWatch) timeout() time.Duration {
	if s.callTimeout > 0 {
		return s.callTimeout
	}
	return statusCallTimeout
}

func (s *statusWatch) etcdErr(err error) error { return etcdError(s.endpoints, err) }
