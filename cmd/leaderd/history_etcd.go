package main

import (
	"context"
	"strings"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/sidecar"
)

// fetchHistory reads the current leader, then the history, each call with
// status's deadlines.
func fetchHistory(cfg sidecar.Config, limit int) (historyReport, error) {
	endpoints := strings.Join(cfg.Endpoints, ",")
	store, err := openStore(cfg)
	if err != nil {
		return historyReport{}, etcdError(endpoints, err)
	}
	defer store.Client().Close()

	ctx, cancel := context.WithTimeout(context.Background(), statusCallTimeout)
	cands, _, err := store.Candidates(ctx)
	cancel()
	if err != nil {
		return historyReport{}, etcdError(endpoints, err)
	}
	var leaderToken int64
	if len(cands) > 0 {
		leaderToken = cands[0].FencingToken()
	}

	ctx, cancel = context.WithTimeout(context.Background(), statusCallTimeout)
	recs, err := store.History(ctx, limit)
	cancel()
	if err != nil {
		return historyReport{}, etcdError(endpoints, err)
	}
	return buildHistory(cfg.Election, recs, leaderToken), nil
}

// buildHistory labels each record. leaderToken is the current leader's
// fencing token, 0 when no one leads. The leader was read before the
// records, so an open record at or above its token is a tenure that is
// still running (or began since), never a crash.
func buildHistory(electionName string, recs []election.TenureRecord, leaderToken int64) historyReport {
	r := historyReport{Election: electionName, Tenures: make([]historyTenure, 0, len(recs))}
	for _, rec := range recs {
		t := historyTenure{ID: rec.ID, FencingToken: rec.FencingToken, Start: rec.Start, EndReason: rec.EndReason}
		switch {
		case !rec.Open():
			end := rec.End
			t.End, t.State = &end, tenureEnded
		case leaderToken > 0 && rec.FencingToken >= leaderToken:
			t.State = tenureCurrent
		default:
			t.State = tenureUnrecorded
		}
		r.Tenures = append(r.Tenures, t)
	}
	return r
}
