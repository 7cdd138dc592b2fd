package sidecar

import (
	"context"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/role"
)

// A failed history write is tried again after historyRetryMin, doubling up
// to historyRetryMax: soon after a short outage, cheaply during a long one.
const (
	historyRetryMin = 250 * time.Millisecond
	historyRetryMax = 5 * time.Second
)

// recordTenure keeps the election's history (`leaderd history`): it
// writes the tenure's start record, then its end record once end is
// called. It runs beside the state machine, so a slow etcd never delays a
// promote or a step-down; the two writes stay in order because one
// goroutine does both. A failed write is retried with a growing back-off
// until it succeeds or ctx ends (Run's end) or Abort; after that each
// record gets one attempt. An end record that arrives meanwhile replaces
// the start record it overwrites anyway. Failures are logged once per
// outage.
func (s *Sidecar) recordTenure(ctx context.Context, el elector, token int64, start time.Time) (end func(reason role.Reason)) {
	rec := election.TenureRecord{ID: s.cfg.ID, FencingToken: token, Start: start.UTC()}
	ended := make(chan election.TenureRecord, 1)
	s.actors.spawn("history", func() { s.writeHistory(ctx, el, rec, ended) })
	return func(reason role.Reason) {
		done := rec // a copy: the goroutine may still be writing rec
		done.End, done.EndReason = time.Now().UTC(), reason
		ended <- done
	}
}

// writeHistory writes rec, then the record that arrives on ended, retrying
// failed writes as recordTenure says.
func (s *Sidecar) writeHistory(ctx context.Context, el elector, rec election.TenureRecord, ended <-chan election.TenureRecord) {
	final := false // rec is the end record
	wait := historyRetryMin
	failedAttempts := 0
	for {
		err := s.writeTenureRecord(el, rec)
		if err == nil {
			if failedAttempts > 0 {
				s.logger.Info("recorded the tenure in the history after retrying", "fencing_token", rec.FencingToken, "failed_attempts", failedAttempts)
			}
			if final {
				return
			}
			rec, final = <-ended, true
			wait, failedAttempts = historyRetryMin, 0
			continue
		}
		switch {
		case failedAttempts > 0:
		case ctx.Err() != nil || s.abortCtx.Err() != nil:
			s.logger.Warn("recording the tenure in the history failed", "fencing_token", rec.FencingToken, "end", final, "err", err)
		default:
			s.logger.Warn("recording the tenure in the history failed; retrying", "fencing_token", rec.FencingToken, "end", final, "err", err)
		}
		failedAttempts++
		var next <-chan election.TenureRecord
		if !final {
			next = ended
		}
		retry := time.NewTimer(wait)
		var over <-chan struct{} // Run's end or Abort: no more retries
		select {
		case <-retry.C:
			wait = min(2*wait, historyRetryMax)
			continue
		case r := <-next:
			rec, final = r, true
		case <-ctx.Done():
			over = ctx.Done()
		case <-s.abortCtx.Done():
			over = s.abortCtx.Done()
		}
		retry.Stop()
		if over == nil {
			continue // the end record: try it at once
		}
		if final {
			if failedAttempts > 1 {
				s.logger.Warn("gave up recording the tenure in the history", "fencing_token", rec.FencingToken, "failed_attempts", failedAttempts)
			}
			return
		}
		// Give up on the start record; the end record gets one attempt.
		rec, final = <-ended, true
	}
}

// writeTenureRecord makes one bounded attempt.
func (s *Sidecar) writeTenureRecord(el elector, rec election.TenureRecord) error {
	ctx, cancel := s.cleanupContext()
	defer cancel()
	return el.RecordTenure(ctx, rec)
}
