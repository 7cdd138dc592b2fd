package sidecar

import (
	"time"

	"github.com/leaderd/leaderd/election"
)

// recordTenure keeps the election's history (`leaderd history`): it writes
// the tenure's start record, then its end record once end is called. It
// runs beside the state machine, so a slow etcd never delays a promote or
// a step-down; the two writes stay in order because one goroutine does
// both. A failed write is logged, not retried: history is for operators,
// not for safety.
func (s *Sidecar) recordTenure(el elector, token int64, start time.Time) (end func(reason string)) {
	rec := election.TenureRecord{ID: s.cfg.ID, FencingToken: token, Start: start.UTC()}
	ended := make(chan election.TenureRecord, 1)
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		write := func(r election.TenureRecord) {
			ctx, cancel := s.cleanupContext()
			defer cancel()
			if err := el.RecordTenure(ctx, r); err != nil {
				s.logger.Warn("recording the tenure in the history failed", "fencing_token", r.FencingToken, "err", err)
			}
		}
		write(rec)
		write(<-ended)
	}()
	return func(reason string) {
		done := rec // a copy: the goroutine may still be writing rec
		done.End, done.EndReason = time.Now().UTC(), reason
		ended <- done
	}
}
