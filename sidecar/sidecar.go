// Package sidecar is leaderd's role state machine: it campaigns through
// package election, runs the promote and demote hooks, and serves the
// HTTP API. See DESIGN.md, "The role state machine".
package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/health"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// Grace constants, with the reason beside each.
const (
	// cleanupTimeout bounds each etcd clean-up call (resign, revoke): if
	// etcd does not answer by then, the lease will expire by itself.
	cleanupTimeout = 2 * time.Second
	// httpShutdownTimeout bounds the API server's graceful stop.
	httpShutdownTimeout = 2 * time.Second
)

// Sidecar runs the role state machine for one replica.
type Sidecar struct {
	cfg     Config
	logger  *slog.Logger
	elector elector // nil: built from cfg in Run
	promote hookRunner
	demote  hookRunner
	follow  hookRunner // the leader-change hook; nil without one
	// Wake-ups for the state machine (buffered 1, latest wins): control
	// requests changed, the candidates changed, POST /resign.
	controlChanged    chan struct{}
	candidatesChanged chan struct{}
	resignRequests    chan struct{}
	// hookMu serialises every hook of this replica: the state machine's
	// promote and demote, and the follower's leader-change hook.
	hookMu sync.Mutex
	// followGate lets a promote or demote kill a running leader-change
	// hook instead of waiting behind it for hookMu (see runHook).
	followGate followGate
	state      *state
	health     appHealth
	checker    *health.Checker // runs the health check; nil without one

	// newBackOff makes the retry policy; tests shorten it.
	newBackOff func() backoff.BackOff

	// background counts work beside the state machine (history records)
	// that Run waits for before it closes the etcd client.
	background sync.WaitGroup

	// abortCtx ends on Abort; etcd clean-up contexts derive from it.
	abortCtx    context.Context
	abortCancel context.CancelFunc
}

// Abort cuts the etcd clean-up of a graceful stop short, and ends the
// retries of a failing demote. It never interrupts a running demote hook.
// Idempotent.
func (s *Sidecar) Abort() { s.abortCancel() }

// New validates cfg and returns a sidecar ready to Run.
func New(cfg Config, logger *slog.Logger) (*Sidecar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "sidecar", "id", cfg.ID, "election", cfg.Election)
	s := newSidecar(cfg, logger, nil,
		&hooks.Runner{Name: "promote", Command: cfg.OnPromote, Timeout: cfg.PromoteTimeout, Logger: logger},
		&hooks.Runner{Name: "demote", Command: cfg.OnDemote, Timeout: cfg.DemoteTimeout, Logger: logger},
	)
	s.state.metrics.countLogDrops(cfg.LogLinesDropped)
	if cfg.Health.Enabled() {
		s.checker = health.NewChecker(cfg.Health, logger)
		s.setHealth(s.checker)
	}
	if cfg.OnLeaderChange != "" {
		s.follow = &hooks.Runner{Name: "leader-change", Command: cfg.OnLeaderChange, Timeout: cfg.PromoteTimeout, Logger: logger}
	}
	return s, nil
}

// setHealth makes h the source of the app's health.
func (s *Sidecar) setHealth(h appHealth) {
	s.health = h
	s.state.update(func(st *state) { st.appHealthy = h.Healthy })
}

func newSidecar(cfg Config, logger *slog.Logger, el elector, promote, demote hookRunner) *Sidecar {
	abortCtx, abort := context.WithCancel(context.Background())
	return &Sidecar{
		controlChanged:    make(chan struct{}, 1),
		candidatesChanged: make(chan struct{}, 1),
		resignRequests:    make(chan struct{}, 1),
		health:            alwaysHealthy{},
		abortCtx:          abortCtx,
		abortCancel:       abort,
		cfg:               cfg,
		logger:            logger,
		elector:           el,
		promote:           promote,
		demote:            demote,
		state:             newState(),
		newBackOff:        defaultBackOff,
	}
}

func defaultBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0 // retry until the context ends
	return b
}

// Status returns what GET /status shows.
func (s *Sidecar) Status() Status {
	st := s.state.snapshot(s.cfg.ID, s.cfg.Election, time.Now())
	if s.checker != nil {
		last := s.checker.Last()
		st.HealthCheck = &last
	}
	return st
}

// Run campaigns until ctx ends, then steps down gracefully: as primary it
// demotes, resigns and revokes; as standby it revokes. It returns nil after
// a clean stop.
func (s *Sidecar) Run(ctx context.Context) error {
	el := s.elector
	if el == nil {
		etcd := newEtcdElector(s.newClient, election.Options{
			Prefix:   s.cfg.Prefix,
			Election: s.cfg.Election,
			Lease: election.LeaseOptions{
				TTL:           s.cfg.TTL,
				RenewInterval: s.cfg.RenewInterval(),
				StepDownLead:  s.cfg.StepDownLead(),
				OnRenew:       s.state.renewed,
			},
		}, s.logger)
		// Closed after the leader watch has stopped (defers run last first).
		defer etcd.Close()
		el = etcd
	}
	defer s.background.Wait()

	if s.cfg.Listen != "off" {
		stop, err := s.serveHTTP()
		if err != nil {
			return err
		}
		defer stop()
	}

	watchCtx, stopWatch := context.WithCancel(context.Background())
	leaderChanged := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(4)
	go func() {
		defer wg.Done()
		s.publishMembers(watchCtx, el)
	}()
	go func() {
		defer wg.Done()
		el.WatchLeader(watchCtx, func(c []election.Candidate, err error) {
			s.watchFailed("leader", &s.state.leaderFailing, err)
			if err == nil {
				s.state.setLeader(c)
				wake(leaderChanged)
				wake(s.candidatesChanged)
			}
		})
	}()
	go func() {
		defer wg.Done()
		el.WatchControl(watchCtx, func(c election.Control, err error) {
			s.watchFailed("control", &s.state.controlFailing, err)
			if err == nil {
				s.state.update(func(st *state) { st.control, st.controlKnown = c, true })
				wake(s.controlChanged)
			}
		})
	}()
	go func() {
		defer wg.Done()
		s.followLeader(watchCtx, el, leaderChanged)
	}()
	defer wg.Wait()
	defer stopWatch()

	if s.checker != nil {
		checkCtx, stopChecks := context.WithCancel(context.Background())
		checked := make(chan struct{})
		go func() {
			defer close(checked)
			s.checker.Run(checkCtx)
		}()
		defer func() { stopChecks(); <-checked }()
	}

	s.state.update(func(st *state) { st.running = true })
	defer s.state.update(func(st *state) { st.running, st.phase = false, role.PhaseStopped })
	return s.loop(ctx, el)
}

func (s *Sidecar) newClient() (*clientv3.Client, error) {
	tlsCfg, err := s.cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{
		Endpoints:   s.cfg.Endpoints,
		DialTimeout: 2 * time.Second,
		// gRPC raises any keepalive time below 10s to 10s. Cut-offs are
		// caught by the lease guard's per-call deadlines; these pings only
		// make a dead connection get replaced (another endpoint tried).
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		TLS:                  tlsCfg,
		Username:             s.cfg.User,
		Password:             s.cfg.Password,
		Logger:               zap.NewNop(),
	})
}

// loop is the state machine. Hooks run only from here, one at a time.
func (s *Sidecar) loop(ctx context.Context, el elector) error {
	// 1. Bring an app left primary by a crash back to a known state.
	if !s.runDemote(ctx, role.ReasonStartup, role.Standby, 0, 0) {
		return errors.New("start-up demote hook did not succeed before shutdown")
	}
	// Two back-offs: one paces lease grants while etcd is unreachable, the
	// other campaigns after a failure (a failed promote, a campaign etcd
	// refused). The second is reset only by a tenure that reached primary or
	// a campaign that lasted, so that an always-failing promote slows down
	// instead of cycling through leases, hooks and history records.
	grantBackOff := s.newBackOff()
	retryBackOff := s.newBackOff()
	for {
		if ctx.Err() != nil {
			return nil
		}
		cand, err := el.Grant(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err = s.explain(err)
			s.state.update(func(st *state) { st.phase = role.PhaseConnecting })
			s.state.setEtcd(err)
			wait := grantBackOff.NextBackOff()
			s.logger.Warn("cannot get a lease; retrying", "err", err, "retry_in", wait)
			if !sleepCtx(ctx, wait) {
				return nil
			}
			continue
		}
		s.state.setEtcd(nil)
		grantBackOff.Reset()
		out, err := s.term(ctx, el, cand)
		if err != nil {
			return err
		}
		if out.settled {
			retryBackOff.Reset()
		}
		if out.backOff {
			wait := retryBackOff.NextBackOff()
			s.logger.Info("waiting before campaigning again", "retry_in", wait)
			if !sleepCtx(ctx, wait) {
				return nil
			}
		}
	}
}

// termOutcome is how one term ended, for the retry policy.
type termOutcome struct {
	// backOff: wait before the next campaign (something failed).
	backOff bool
	// settled: the term reached primary or campaigned steadily, so earlier
	// failures are forgiven.
	settled bool
}

// steadyCampaign is how long a campaign must last to count as settled: one
// TTL shows the lease and the election work.
func (s *Sidecar) steadyCampaign() time.Duration { return s.cfg.TTL }

// term campaigns on one lease and, on a win, serves one tenure.
func (s *Sidecar) term(ctx context.Context, el elector, cand candidacy) (out termOutcome, err error) {
	s.state.update(func(st *state) { st.candidacy = cand })
	granted := time.Now()
	abandon := false // the lease is left to expire: see tenure's failed demote
	defer func() {
		// A lease lost within a TTL of its grant (something revokes leases,
		// etcd flaps) must not cycle grants as fast as etcd answers.
		if cand.Err() != nil && time.Since(granted) < s.cfg.TTL {
			out.backOff = true
		}
		// Without a lease until the next grant.
		s.state.setPhase(role.PhaseConnecting)
		defer s.state.update(func(st *state) { st.candidacy, st.tenure, st.fencingToken = nil, nil, 0 })
		if abandon {
			// Stop renewing, never revoke: the app was not demoted, so the
			// leader key must stay until the lease expires on the server.
			cand.Abandon()
			s.logger.Warn("leaving the lease to expire: the demote did not succeed", "lease", election.LeaseHex(cand.LeaseID()))
			return
		}
		cctx, cancel := s.cleanupContext()
		defer cancel()
		if err := cand.Close(cctx); err != nil {
			s.logger.Warn("revoking the lease failed; retrying beside the state machine", "err", err)
			s.retryRevoke(ctx, cand)
		}
	}()

	lease := election.LeaseHex(cand.LeaseID())
	// The lease is held (the member record published) while not ready.
	if !s.waitReady(ctx, cand) {
		return termOutcome{}, nil
	}
	s.state.setPhase(role.PhaseCampaigning)
	s.logger.Info("campaigning", "lease", lease)
	value, _ := json.Marshal(election.CandidateValue{ID: s.cfg.ID, Addr: s.cfg.Advertise, Since: time.Now().UTC()})
	cctx, withdraw := context.WithCancel(ctx)
	stopWatch := s.onNotReady(withdraw)
	campaignStart := time.Now()
	ten, err := cand.Campaign(cctx, string(value))
	stopWatch()
	withdraw()
	steady := time.Since(campaignStart) >= s.steadyCampaign()
	if err != nil {
		if ctx.Err() != nil {
			return termOutcome{}, nil
		}
		if why := s.notReady(); why != "" {
			level := slog.LevelWarn
			if routineWait(why) {
				level = slog.LevelInfo
			}
			s.logger.Log(context.Background(), level, "withdrew from the election", "why", why, "lease", lease)
			return termOutcome{settled: steady}, nil
		}
		s.logger.Warn("campaign ended without a win", "lease", lease, "err", err)
		// A lost lease is replaced at once; anything else is retried later.
		return termOutcome{backOff: cand.Err() == nil, settled: steady}, nil
	}
	out, abandon, err = s.tenure(ctx, el, cand, ten)
	out.settled = out.settled || steady
	return out, err
}

// tenure promotes, serves until the tenure ends, and steps down: demote
// first, then resign, then (in term) revoke, so that the next primary's
// promote starts only after this demote has ended. abandon asks term to
// leave the lease to expire instead of revoking it.
func (s *Sidecar) tenure(ctx context.Context, el elector, cand candidacy, ten tenure) (out termOutcome, abandon bool, err error) {
	token := ten.FencingToken()
	if why := s.notReady(); why != "" {
		// Won just as the replica stopped being ready (unhealthy, paused,
		// yielding): give way without promoting.
		s.logger.Info("elected, but not ready: resigning without promoting", "why", why, "fencing_token", token)
		cctx, cancel := s.cleanupContext()
		defer cancel()
		if err := ten.Resign(cctx); err != nil {
			s.logger.Warn("resign failed; revoking the lease instead", "err", err)
		}
		return termOutcome{}, false, nil
	}
	s.logger.Info("elected", "fencing_token", token)
	endRecord := s.recordTenure(ctx, el, token, time.Now())
	s.state.update(func(st *state) { st.phase, st.fencingToken, st.tenure = role.PhasePromoting, token, ten })
	s.state.transition(role.Primary, role.ReasonElected)

	// A promote still running when the tenure ends is killed.
	pctx, cancelPromote := context.WithCancel(context.Background())
	stopKill := make(chan struct{})
	go func() {
		select {
		case <-ten.Lost():
		case <-ctx.Done():
		case <-stopKill:
		}
		cancelPromote()
	}()
	res := s.runHook(pctx, s.promote, s.env(hooks.Promote, role.Primary, role.Standby, role.ReasonElected, token, cand.LeaseID()))
	close(stopKill)
	cancelPromote()
	s.state.recordHook(res)

	var reason role.Reason
	var request *election.Request // a resign or switchover request this step-down answers
	switch {
	case ten.Err() != nil:
		reason = lostReason(ten.Err())
	case ctx.Err() != nil:
		reason = role.ReasonShutdown
	case !res.OK():
		reason = role.ReasonPromoteFailed
		out.backOff = true
		s.logger.Error("promote hook failed; giving way", "err", res.Err)
	default:
		out.settled = true
		s.state.setPhase(role.PhasePrimary)
		s.logger.Info("primary", "fencing_token", token)
		reason, request = s.serve(ctx, ten)
	}
	// /primary stops answering 200 before anything is logged.
	s.state.setPhase(role.PhaseDemoting)
	s.logger.Info("stepping down", "reason", reason, "fencing_token", token)

	// Demote before anything else. While a voluntary demote is retried the
	// key stays ours, so nobody else promotes over a half-demoted app.
	if !s.runDemote(ctx, reason, role.Primary, token, cand.LeaseID()) {
		endRecord(reason)
		return out, true, fmt.Errorf("demote hook did not succeed (reason %s); leaving the lease to expire", reason)
	}
	if ten.Err() == nil {
		cctx, cancel := s.cleanupContext()
		if err := ten.Resign(cctx); err != nil {
			s.logger.Warn("resign failed; revoking the lease instead", "err", err)
		}
		cancel()
	} else {
		s.logger.Info("not resigning: the tenure is already lost", "err", ten.Err())
	}
	endRecord(reason)
	if request != nil {
		cctx, cancel := s.cleanupContext()
		if err := el.ClearRequest(cctx, request); err != nil {
			s.logger.Warn("clearing the handled request failed; it expires by itself", "err", err)
		}
		cancel()
	}
	return out, false, nil
}

// runDemote runs the demote hook until it succeeds, backing off between
// attempts and reporting the replica degraded meanwhile. It gives up only
// on Abort, or on shutdown when there is nothing to step down from; it
// reports whether a demote succeeded.
func (s *Sidecar) runDemote(ctx context.Context, reason role.Reason, previous role.Role, token, lease int64) bool {
	s.state.setPhase(role.PhaseDemoting)
	if reason == role.ReasonStartup {
		s.state.setPhase(role.PhaseStarting)
	}
	bo := s.newBackOff()
	for attempt := 1; ; attempt++ {
		res := s.runHook(context.Background(), s.demote, s.env(hooks.Demote, role.Standby, previous, reason, token, lease))
		s.state.recordHook(res)
		if res.OK() {
			s.state.update(func(st *state) { st.demoteFailed = false })
			if previous == role.Primary {
				s.state.transition(role.Standby, reason)
			}
			return true
		}
		s.state.update(func(st *state) { st.demoteFailed = true })
		wait := bo.NextBackOff()
		s.logger.Error("demote hook failed; retrying, not campaigning until it succeeds",
			"reason", reason, "attempt", attempt, "err", res.Err, "retry_in", wait)
		// At start-up there is no tenure to protect, so shutdown ends the
		// retries; after a tenure only Abort does.
		var shutdown <-chan struct{}
		if reason == role.ReasonStartup {
			shutdown = ctx.Done()
		}
		retry := time.NewTimer(wait)
		select {
		case <-s.abortCtx.Done():
			retry.Stop()
			return false
		case <-shutdown:
			retry.Stop()
			return false
		case <-retry.C:
		}
	}
}

func (s *Sidecar) env(event hooks.Event, to, previous role.Role, reason role.Reason, token, lease int64) hooks.Env {
	leader := s.state.leaderID()
	if event == hooks.Promote {
		leader = s.cfg.ID
	}
	return hooks.Env{
		Event:        event,
		Role:         to,
		PreviousRole: previous,
		Reason:       reason,
		ID:           s.cfg.ID,
		Election:     s.cfg.Election,
		Leader:       leader,
		FencingToken: token,
		LeaseID:      lease,
	}
}

// cleanupContext bounds one etcd clean-up call; Abort cuts it short.
// Never derived from the run context, which is already cancelled on stop.
func (s *Sidecar) cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.abortCtx, cleanupTimeout)
}

// revokeRetry paces the retries of a failed revoke.
const revokeRetry = 500 * time.Millisecond

// retryRevoke keeps trying to revoke a lease whose revoke failed (etcd
// unreachable, quorum lost), until it works, the lease could no longer be
// alive (2 x TTL: a new etcd leader extends every lease by its TTL), or ctx
// ends. Without it, the lease's keys block the next election for a whole
// TTL after etcd comes back.
func (s *Sidecar) retryRevoke(ctx context.Context, cand candidacy) {
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		give := time.NewTimer(2 * cand.TTL())
		defer give.Stop()
		tick := time.NewTicker(revokeRetry)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.abortCtx.Done():
				return
			case <-give.C:
				return
			case <-tick.C:
			}
			rctx, cancel := s.cleanupContext()
			err := cand.Revoke(rctx)
			cancel()
			if err == nil {
				s.logger.Info("revoked the old lease", "lease", election.LeaseHex(cand.LeaseID()))
				return
			}
		}
	}()
}

// watchFailed logs a leader or control watch's failures once per outage,
// as the lease loop does, and its recovery. failing is guarded by the
// state's lock.
func (s *Sidecar) watchFailed(watch string, failing *bool, err error) {
	s.state.mu.Lock()
	was := *failing
	*failing = err != nil
	s.state.mu.Unlock()
	switch {
	case err != nil && !was:
		s.logger.Warn("reading etcd failed; retrying", "watch", watch, "err", err)
	case err == nil && was:
		s.logger.Info("reading etcd recovered", "watch", watch)
	}
}

func lostReason(err error) role.Reason {
	switch {
	case errors.Is(err, election.ErrKeyDeleted):
		return role.ReasonKeyDeleted
	case errors.Is(err, election.ErrSafeDeadline):
		return role.ReasonEtcdUnreachable
	default:
		// ErrLeaseNotFound, and ErrLeaseExpired: the process was frozen past
		// its lease (SIGSTOP, a stalled VM), though etcd was reachable.
		return role.ReasonLeaseLost
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Sidecar) serveHTTP() (stop func(), err error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("HTTP API stopped", "err", err)
		}
	}()
	s.logger.Info("HTTP API listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
