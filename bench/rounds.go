package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/role"
)

// bench runs rounds on a cluster and records them into phases.
type bench struct {
	c   *cluster
	o   options
	log io.Writer
}

// Distribution names, shared by the phase constructors and the rounds.
const (
	distHandoff       = "old demote end → new promote start"
	distStopToPromote = "SIGTERM → new promote start"
	distFailover      = "SIGKILL → new promote start"
	distRemaining     = "lease time left at the kill"
	distExcess        = "excess: failover − lease time left"
	distCutToDemote   = "cut → old demote end"
	distCutToPromote  = "cut → new promote start"
	distMargin        = "margin: new promote start − old demote end"
)

func (b *bench) gracefulDists() []*dist {
	return []*dist{
		{Name: distHandoff, Target: target{P99: 20 * time.Millisecond}},
		{Name: distStopToPromote},
	}
}

func (b *bench) crashDists() []*dist {
	return []*dist{
		{Name: distFailover},
		{Name: distRemaining},
		{Name: distExcess, Target: target{P99: 600 * time.Millisecond}},
	}
}

func (b *bench) cutoffDists() []*dist {
	return []*dist{
		{Name: distCutToDemote},
		{Name: distCutToPromote},
		{Name: distMargin, Target: target{Positive: true}},
	}
}

// lessorTick is how often etcd's lessor looks for expired leases; a lease
// is revoked at the first look after its expiry.
const lessorTick = 500 * time.Millisecond

// jitter is a random delay in [0, lessorTick) taken before a replica is
// restarted or healed, which is when it grants its next lease. Without it
// the rounds run in lockstep: each grant comes a fixed time after the
// previous promote, itself right after a lessor tick, so every lease
// expires at the same point of the lessor's cycle and the crash excess
// and cut-off margin measure one phase instead of a distribution.
func jitter() time.Duration { return rand.N(lessorTick) }

// runPhase runs o.rounds rounds. A failed round is recorded and the cluster
// recovered; only a failed recovery (or Ctrl-C) ends the phase early.
func (b *bench) runPhase(ctx context.Context, p *phase, round func(context.Context, *phase) error) error {
	for i := 1; i <= b.o.rounds; i++ {
		if ctx.Err() != nil {
			return nil
		}
		p.Rounds++
		err := round(ctx, p)
		if err == nil {
			fmt.Fprintf(b.log, "bench: %s %d/%d: %s\n", p.Name, i, b.o.rounds, p.lastLine())
			continue
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			p.Rounds--
			return nil
		}
		p.Failures = append(p.Failures, fmt.Sprintf("round %d: %v", i, err))
		fmt.Fprintf(b.log, "bench: %s %d/%d: FAILED: %v\n", p.Name, i, b.o.rounds, err)
		if err := b.c.recover(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("recover after round %d: %w", i, err)
		}
	}
	return nil
}

// gracefulRound: SIGTERM the primary. It demotes (reason shutdown), resigns
// and revokes; the next candidate's promote starts once the key is gone.
// Then restart the stopped replica and wait until it campaigns again.
func (b *bench) gracefulRound(ctx context.Context, p *phase) error {
	c := b.c
	primary, err := c.waitSteady(ctx, steadyTimeout)
	if err != nil {
		return err
	}
	from, err := c.timelineLen()
	if err != nil {
		return err
	}
	stopAt := time.Now()
	if err := primary.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM %s: %w", primary.ID, err)
	}
	handoffTimeout := 2*b.o.ttl + 10*time.Second
	demoted, err := c.waitEvent(ctx, handoffTimeout, "demote end of "+primary.ID, from, demoteEnd(primary.ID))
	if err != nil {
		return err
	}
	promoted, err := c.waitEvent(ctx, handoffTimeout, "promote start after "+primary.ID, from, promoteStartOther(primary.ID))
	if err != nil {
		return err
	}
	if demoted.Reason != role.ReasonShutdown {
		return fmt.Errorf("%s demoted with reason %s, want %s", primary.ID, demoted.Reason, role.ReasonShutdown)
	}
	handoff := promoted.At.Sub(demoted.At)
	p.record(distHandoff, handoff)
	p.record(distStopToPromote, promoted.At.Sub(stopAt))
	p.line = fmt.Sprintf("%s → %s, hand-off %s", primary.ID, promoted.ID, ms(handoff))
	if handoff <= 0 {
		p.Violations++
		return fmt.Errorf("%s promoted %s before %s's demote ended", promoted.ID, ms(-handoff), primary.ID)
	}
	code, err := primary.Wait(exitTimeout)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s exited %d after SIGTERM, want 0", primary.ID, code)
	}
	return b.restart(ctx, primary.ID)
}

// crashRound: read the primary's lease from /status, SIGKILL it, and time
// the next promote against the lease time that was left. The killed
// primary's lease must expire on the server before anyone can promote.
func (b *bench) crashRound(ctx context.Context, p *phase) error {
	c := b.c
	primary, err := c.waitSteady(ctx, steadyTimeout)
	if err != nil {
		return err
	}
	from, err := c.timelineLen()
	if err != nil {
		return err
	}
	readStart := time.Now()
	st, err := primary.Status(ctx)
	readEnd := time.Now()
	if err != nil {
		return fmt.Errorf("status of %s: %w", primary.ID, err)
	}
	if st.Role != role.Primary || st.Lease == nil {
		return fmt.Errorf("%s is no longer a primary with a lease (%s/%s)", primary.ID, st.Role, st.Phase)
	}
	killAt := time.Now()
	if err := primary.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("SIGKILL %s: %w", primary.ID, err)
	}
	// The status was taken somewhere inside the request: take the middle.
	readAt := readStart.Add(readEnd.Sub(readStart) / 2)
	toSafe := time.Duration(st.Lease.SecondsToSafeDeadline * float64(time.Second))
	// The safe deadline lies stepDownLead before the earliest server-side
	// expiry, so this is the time from the kill to that expiry.
	remaining := toSafe + b.o.stepDownLead - killAt.Sub(readAt)

	promoted, err := c.waitEvent(ctx, 2*b.o.ttl+10*time.Second, "promote start after "+primary.ID, from, promoteStartOther(primary.ID))
	if err != nil {
		return err
	}
	failover := promoted.At.Sub(killAt)
	excess := failover - remaining
	p.record(distFailover, failover)
	p.record(distRemaining, remaining)
	p.record(distExcess, excess)
	p.line = fmt.Sprintf("%s → %s, failover %s, lease left %s, excess %s (status read %s before the kill)",
		primary.ID, promoted.ID, ms(failover), ms(remaining), ms(excess), ms(killAt.Sub(readAt)))
	if excess < 0 {
		// A promote before the old lease could have expired on the server.
		p.Violations++
		return fmt.Errorf("%s promoted %s before %s's lease could expire", promoted.ID, ms(-excess), primary.ID)
	}
	if _, err := primary.Wait(exitTimeout); err != nil {
		return err
	}
	return b.restart(ctx, primary.ID)
}

// cutoffRound: blackhole the primary's connection to etcd. Its lease guard
// must demote it (reason etcd-unreachable) before the server expires the
// lease and another replica promotes. Then heal and wait until it is a
// campaigning standby again.
func (b *bench) cutoffRound(ctx context.Context, p *phase) error {
	c := b.c
	primary, err := c.waitSteady(ctx, steadyTimeout)
	if err != nil {
		return err
	}
	from, err := c.timelineLen()
	if err != nil {
		return err
	}
	proxy := c.proxies[primary.ID]
	defer proxy.Heal() // also when the round fails
	cutAt := time.Now()
	proxy.CutOff()
	timeout := 2*b.o.ttl + 10*time.Second
	demoted, err := c.waitEvent(ctx, timeout, "demote end of "+primary.ID, from, demoteEnd(primary.ID))
	if err != nil {
		return err
	}
	promoted, err := c.waitEvent(ctx, timeout, "promote start after "+primary.ID, from, promoteStartOther(primary.ID))
	if err != nil {
		return err
	}
	margin := promoted.At.Sub(demoted.At)
	p.record(distCutToDemote, demoted.At.Sub(cutAt))
	p.record(distCutToPromote, promoted.At.Sub(cutAt))
	p.record(distMargin, margin)
	p.line = fmt.Sprintf("%s → %s, demote %s after the cut (%s), promote %s after, margin %s",
		primary.ID, promoted.ID, ms(demoted.At.Sub(cutAt)), demoted.Reason, ms(promoted.At.Sub(cutAt)), ms(margin))
	if margin <= 0 {
		p.Violations++
		return fmt.Errorf("%s promoted %s before cut-off %s's demote ended", promoted.ID, ms(-margin), primary.ID)
	}
	if demoted.Reason != role.ReasonEtcdUnreachable {
		return fmt.Errorf("%s demoted with reason %s, want %s", primary.ID, demoted.Reason, role.ReasonEtcdUnreachable)
	}
	if !sleepCtx(ctx, jitter()) {
		return ctx.Err()
	}
	proxy.Heal()
	_, err = c.waitSteady(ctx, steadyTimeout)
	return err
}

// restart starts id again, after a random delay, and waits until it is a
// campaigning standby.
func (b *bench) restart(ctx context.Context, id string) error {
	if !sleepCtx(ctx, jitter()) {
		return ctx.Err()
	}
	if err := b.c.start(id); err != nil {
		return err
	}
	_, err := b.c.waitSteady(ctx, steadyTimeout)
	return err
}
