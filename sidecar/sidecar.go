// Package sidecar is leaderd's role state machine: it campaigns through
// package election, runs the promote and demote hooks, and serves the
// HTTP API. Read machine.go first: loop, term, tenure and stepDown hold
// the safety argument; docs/design.md explains it.
package sidecar

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

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
	checker    *health.Checker // runs the health check; nil without one

	// newBackOff makes the retry policy; tests shorten it.
	newBackOff func() backoff.BackOff

	// actors is the work beside the state machine, which Run stops and
	// waits for before it closes the etcd client.
	actors actors

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
	s.state.metrics.expectHooks("promote", "demote")
	s.state.metrics.exportPriority(cfg.Priority)
	if cfg.Health.Enabled() {
		s.checker = health.NewChecker(cfg.Health, logger)
		s.setHealth(s.checker)
	}
	if cfg.OnLeaderChange != "" {
		s.follow = &hooks.Runner{Name: "leader-change", Command: cfg.OnLeaderChange, Timeout: cfg.PromoteTimeout, Logger: logger}
		s.state.metrics.expectHooks("leader-change")
	}
	return s, nil
}

// setHealth makes h the source of the app's health; before Run only.
func (s *Sidecar) setHealth(h appHealth) { s.state.health = h }

func newSidecar(cfg Config, logger *slog.Logger, el elector, promote, demote hookRunner) *Sidecar {
	abortCtx, abort := context.WithCancel(context.Background())
	s := &Sidecar{
		controlChanged:    make(chan struct{}, 1),
		candidatesChanged: make(chan struct{}, 1),
		resignRequests:    make(chan struct{}, 1),
		actors:            actors{logger: logger},
		abortCtx:          abortCtx,
		abortCancel:       abort,
		cfg:               cfg,
		logger:            logger,
		elector:           el,
		promote:           promote,
		demote:            demote,
		state:             newState(cfg.Election, cfg.ID),
		newBackOff:        defaultBackOff,
	}
	// A target that led longer than any promote, and a TTL more, served.
	s.state.yields.servedFor = cfg.PromoteTimeout + cfg.TTL
	return s
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
	b := s.cfg.Budget(s.state.ttlInEffect())
	st.Budget = &b
	st.Priority = s.cfg.Priority
	if s.checker != nil {
		last := s.checker.Last()
		st.HealthCheck = &last
	}
	return st
}

// Run campaigns until ctx ends, then steps down gracefully: as primary it
// demotes, resigns and revokes; as standby it revokes. It returns nil after
// a clean stop. The state machine runs in the caller's goroutine; the
// HTTP API, the watches, the member publisher, the follower and the health
// check run beside it as actors, stopped once it returns.
func (s *Sidecar) Run(ctx context.Context) error {
	el := s.elector
	if el == nil {
		etcd := newEtcdElector(s.openStore, election.LeaseOptions{
			TTL:           s.cfg.TTL,
			RenewInterval: s.cfg.RenewInterval(),
			StepDownLead:  s.cfg.StepDownLead(),
			OnRenew:       s.state.renewed,
		}, s.logger)
		etcd.ttl = &ttlCheck{cfg: s.cfg, logger: s.logger, inEffect: s.state.setTTLInEffect}
		// Closed once every actor has stopped: run waits for them.
		defer etcd.Close()
		el = etcd
	}
	if s.cfg.Listen != "off" {
		api, err := s.listen()
		if err != nil {
			return err
		}
		s.actors.add("http-api", api)
	}
	leaderChanged := make(chan struct{}, 1)
	s.actors.add("member-publisher", func(ctx context.Context) { s.publishMembers(ctx, el) })
	s.actors.add("leader-watch", func(ctx context.Context) {
		el.WatchLeader(ctx, func(c []election.Candidate, err error) {
			s.watchFailed("leader", err)
			if err == nil {
				s.state.setLeader(c)
				wake(leaderChanged)
				wake(s.candidatesChanged)
			}
		})
	})
	s.actors.add("control-watch", func(ctx context.Context) {
		el.WatchControl(ctx, func(c election.Control, err error) {
			s.watchFailed("control", err)
			if err == nil {
				s.noteNamed(c.Switchover, time.Now())
				s.state.setControl(c)
				wake(s.controlChanged)
			}
		})
	})
	s.actors.add("follower", func(ctx context.Context) { s.followLeader(ctx, el, leaderChanged) })
	if s.checker != nil {
		s.actors.add("health-check", s.checker.Run)
	}
	return s.actors.run(func() error {
		s.state.setRunning(true)
		defer func() {
			s.state.setRunning(false)
			s.state.setPhase(role.PhaseStopped)
		}()
		return s.loop(ctx, el)
	})
}

// watchFailed logs a leader or control watch's failures once per outage,
// as the lease loop does, and its recovery.
func (s *Sidecar) watchFailed(watch string, err error) {
	was := s.state.watchFailing(watch, err)
	switch {
	case err != nil && !was:
		s.logger.Warn("reading etcd failed; retrying", "watch", watch, "err", err)
	case err == nil && was:
		s.logger.Info("reading etcd recovered", "watch", watch)
	}
}

// openStore connects to etcd and binds the election's keys.
func (s *Sidecar) openStore() (*election.Store, error) {
	return s.cfg.OpenStore(0, election.LogIgnored(s.logger))
}
