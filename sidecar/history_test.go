package sidecar

import (
	"context"
	"testing"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
)

func TestMachineRecordsTenureAfterResign(t *testing.T) {
	m := startMachine(t, nil)
	m.win(t, m.candidacy(t), 7)
	if err := m.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	log, _ := m.calls.snapshot()
	after(t, log, "record start token=7", "record end token=7 reason=shutdown")
	after(t, log, "demote shutdown token=7", "resign", "record end token=7")
}

func TestHistoryKeptInEtcd(t *testing.T) {
	c := newCluster(t)
	first := startThree(t, c)
	if err := c.stop(first.ID); err != nil {
		t.Fatal(err)
	}
	next := c.tl.waitFor(t, "the next promote", promoteStartBy(func(id string) bool { return id != first.ID }))
	cli := etcdtest.NewClient(t, c.etcd.Endpoint())
	deadline := time.Now().Add(waitBound)
	tick := time.NewTicker(20 * time.Millisecond) // the records are written beside the state machine
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		recs, err := election.History(ctx, cli, "/leaderd", "test", 0)
		cancel()
		if err == nil && len(recs) == 2 && recs[1].EndReason == ReasonShutdown && recs[0].Open() {
			if recs[1].ID != first.ID || recs[1].FencingToken != first.Token || recs[0].ID != next.ID || recs[0].FencingToken != next.Token {
				t.Fatalf("history %+v, want %s/%d ended then %s/%d open", recs, first.ID, first.Token, next.ID, next.Token)
			}
			if !recs[1].End.After(recs[1].Start) {
				t.Fatalf("tenure %+v ends before it starts", recs[1])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history never showed both tenures: %+v %v", recs, err)
		}
		<-tick.C
	}
}
