package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
)

// The operator surface: a switchover on request, and the /metrics scrape.

const (
	distSwitchover      = "request → new promote start"
	distSwitchToDemote  = "request → old demote start"
	distSwitchHandoff   = "old demote end → new promote start"
	switchoverLifetime  = 30 * time.Second // Expires of each request, as `leaderd switchover --timeout 30s`
	requestClearTimeout = 15 * time.Second // bounds the wait for the handled request's key to go
)

func (b *bench) switchoverDists() []*dist {
	return []*dist{
		{Name: distSwitchover, Target: target{P99: 30 * time.Millisecond}}, // issue 11
		{Name: distSwitchToDemote},
		{Name: distSwitchHandoff, Target: target{Positive: true}},
	}
}

// switchoverRound: ask the primary to hand over to the standby last in
// campaign order, the one that has to wait for the other standby to yield.
// The request is stored directly (Store.PutRequest), as `leaderd
// switchover` stores it, so the figure is leaderd's and not a process
// start. The target and nobody else must promote, after the old demote
// ended. Then wait until the primary cleared the request and the yielding
// standby campaigns again.
func (b *bench) switchoverRound(ctx context.Context, p *phase) error {
	c := b.c
	primary, err := c.waitSteady(ctx, steadyTimeout)
	if err != nil {
		return err
	}
	// Decorrelate the request from the renewals and the previous round.
	if !sleepCtx(ctx, jitter()) {
		return ctx.Err()
	}
	from, err := c.timelineLen()
	if err != nil {
		return err
	}
	gctx, cancel := context.WithTimeout(ctx, callTimeout)
	cands, _, err := c.store.Candidates(gctx)
	cancel()
	if err != nil {
		return fmt.Errorf("read the candidates: %w", err)
	}
	if len(cands) != len(c.ids) || cands[0].ID != primary.ID {
		return fmt.Errorf("candidates %s changed since the steady state (primary %s)", candidateIDs(cands), primary.ID)
	}
	old, tgt := cands[0], cands[len(cands)-1].ID
	order := candidateIDs(cands)

	now := time.Now()
	pctx, cancel := context.WithTimeout(ctx, callTimeout)
	err = c.store.PutRequest(pctx, election.Request{
		From: old.ID, FencingToken: old.FencingToken(), To: tgt,
		Requested: now.UTC(), Expires: now.Add(switchoverLifetime).UTC(),
	})
	cancel()
	if err != nil {
		return fmt.Errorf("store the switchover request: %w", err)
	}

	timeout := 2*b.o.ttl + 10*time.Second
	promoted, err := c.waitEvent(ctx, timeout, "promote start after the switchover request", from, promoteStartOther(old.ID))
	if err != nil {
		return err
	}
	// The old primary's demote must have ended by now; a short wait only
	// so that a missing end is a failure with the timeline, not a hang.
	demoted, err := c.waitEvent(ctx, 5*time.Second, "demote end of "+old.ID, from, demoteEnd(old.ID))
	if err != nil {
		return err
	}
	demoteStarted, err := c.waitEvent(ctx, time.Second, "demote start of "+old.ID, from, func(e timeline.Event) bool {
		return e.Is(hooks.Demote, timeline.PhaseStart) && e.ID == old.ID
	})
	if err != nil {
		return err
	}
	total := promoted.At.Sub(now)
	handoff := promoted.At.Sub(demoted.At)
	p.record(distSwitchover, total)
	p.record(distSwitchToDemote, demoteStarted.At.Sub(now))
	p.record(distSwitchHandoff, handoff)
	p.line = fmt.Sprintf("%s → %s (order %s), request → demote start %s, demote end → promote start %s, total %s",
		old.ID, promoted.ID, order, ms(demoteStarted.At.Sub(now)), ms(handoff), ms(total))
	if promoted.ID != tgt {
		p.Violations++
		return fmt.Errorf("%s promoted after the switchover %s → %s, not the target", promoted.ID, old.ID, tgt)
	}
	if handoff <= 0 {
		p.Violations++
		return fmt.Errorf("%s promoted %s before %s's demote ended", promoted.ID, ms(-handoff), old.ID)
	}
	if demoted.Reason != role.ReasonSwitchover {
		return fmt.Errorf("%s demoted with reason %s, want %s", old.ID, demoted.Reason, role.ReasonSwitchover)
	}

	if err := b.waitRequestCleared(ctx); err != nil {
		return err
	}
	next, err := c.waitSteady(ctx, steadyTimeout)
	if err != nil {
		return err
	}
	// Nobody but the target promoted in the whole round.
	evs, err := c.set.Timeline()
	if err != nil {
		return err
	}
	var promotes []string
	for _, e := range evs[from:] {
		if e.Is(hooks.Promote, timeline.PhaseStart) {
			promotes = append(promotes, e.String())
		}
	}
	if len(promotes) != 1 || next.ID != tgt {
		p.Violations++
		return fmt.Errorf("switchover %s → %s: primary now %s, promote starts in the round: [%s]", old.ID, tgt, next.ID, strings.Join(promotes, "; "))
	}
	return nil
}

// waitRequestCleared waits until no resign or switchover request is stored:
// the primary deletes the one it answered after resigning.
func (b *bench) waitRequestCleared(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, requestClearTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	last := "not read"
	for {
		rctx, rcancel := context.WithTimeout(wctx, callTimeout)
		ctl, _, err := b.c.store.ReadControl(rctx)
		rcancel()
		switch {
		case err != nil:
			last = err.Error()
		case ctl.Switchover == nil && ctl.Resign == nil:
			return nil
		default:
			last = "request still stored"
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("switchover request not cleared within %s (%s)", requestClearTimeout, last)
		case <-tick.C:
		}
	}
}

func candidateIDs(cands []election.Candidate) string {
	ids := make([]string, 0, len(cands))
	for _, cd := range cands {
		ids = append(ids, cd.ID)
	}
	return "[" + strings.Join(ids, ",") + "]"
}

// scrape is what N sequential GET /metrics on one replica cost.
type scrape struct {
	ID        string
	Role      role.Role
	Latency   dist  // request sent → body read (and gunzipped, a few µs), per scrape
	BodyBytes int   // uncompressed text exposition, last scrape
	WireBytes int   // gzip-encoded response body, last scrape
	CPUTicks  int64 // utime+stime of the replica over all scrapes
	Hz        int64
	Window    time.Duration // first request to last body read
}

// CPUPerScrape is the replica's CPU time over the scrapes divided by their
// number (idle work in the window included; it is ~0.2% of one core).
func (s scrape) CPUPerScrape() time.Duration {
	if s.Latency.Values == nil || s.Hz == 0 {
		return 0
	}
	return time.Duration(float64(s.CPUTicks) / float64(s.Hz) * float64(time.Second) / float64(len(s.Latency.Values)))
}

// metrics scrapes GET /metrics on the primary, then on a standby, n times
// each, one after the other, over one keep-alive connection with
// Accept-Encoding: gzip, as Prometheus scrapes. The roles must not change
// meanwhile.
func (b *bench) metrics(ctx context.Context) ([]scrape, error) {
	c := b.c
	primary, err := c.waitSteady(ctx, steadyTimeout)
	if err != nil {
		return nil, err
	}
	var standby *replicas.Replica
	for _, id := range c.ids {
		if id != primary.ID {
			standby = c.reps[id]
			break
		}
	}
	from, err := c.timelineLen()
	if err != nil {
		return nil, err
	}
	hz := clockTicks()
	var out []scrape
	for _, r := range []*replicas.Replica{primary, standby} {
		rl := role.Standby
		if r == primary {
			rl = role.Primary
		}
		s, err := b.scrapeReplica(ctx, r, hz)
		if err != nil {
			return nil, fmt.Errorf("scrape %s (%s): %w", r.ID, rl, err)
		}
		s.Role = rl
		st := s.Latency.stats()
		fmt.Fprintf(b.log, "bench: metrics: %s (%s) %d scrapes: p50 %s, p99 %s, max %s; body %d B (gzip %d B); CPU %d ticks in %s = %s per scrape\n",
			s.ID, s.Role, st.N, msFine(st.P50), msFine(st.P99), msFine(st.Max), s.BodyBytes, s.WireBytes,
			s.CPUTicks, s.Window.Round(time.Millisecond), msFine(s.CPUPerScrape()))
		out = append(out, s)
	}
	if n, err := c.timelineLen(); err != nil {
		return nil, err
	} else if n != from {
		return nil, fmt.Errorf("the roles changed during the scrapes (%d hook events)", n-from)
	}
	if p, err := c.waitSteady(ctx, 5*time.Second); err != nil {
		return nil, err
	} else if p != primary {
		return nil, fmt.Errorf("primary changed during the scrapes: %s, then %s", primary.ID, p.ID)
	}
	return out, nil
}

func (b *bench) scrapeReplica(ctx context.Context, r *replicas.Replica, hz int64) (scrape, error) {
	s := scrape{ID: r.ID, Hz: hz, Latency: dist{Name: "latency"}}
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: callTimeout}
	url := "http://" + r.APIAddr + "/metrics"
	get := func() (body, wire int, err error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("GET /metrics: %s", resp.Status)
		}
		if resp.Header.Get("Content-Encoding") != "gzip" {
			return len(raw), len(raw), nil
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return 0, 0, err
		}
		n, err := io.Copy(io.Discard, zr)
		return int(n), len(raw), err
	}
	// One scrape first, so the connection is open and the measured ones
	// are steady-state scrapes.
	if _, _, err := get(); err != nil {
		return s, err
	}
	t0, err := cpuTicks(r.Pid())
	if err != nil {
		return s, err
	}
	began := time.Now()
	for i := 0; i < b.o.scrapes; i++ {
		start := time.Now()
		body, wire, err := get()
		if err != nil {
			return s, fmt.Errorf("scrape %d: %w", i+1, err)
		}
		s.Latency.Values = append(s.Latency.Values, time.Since(start))
		s.BodyBytes, s.WireBytes = body, wire
	}
	s.Window = time.Since(began)
	t1, err := cpuTicks(r.Pid())
	if err != nil {
		return s, err
	}
	s.CPUTicks = t1 - t0
	return s, nil
}

// msFine formats d in milliseconds to 0.01 ms, for sub-millisecond figures.
func msFine(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
