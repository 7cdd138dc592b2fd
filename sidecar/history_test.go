package sidecar

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/role"
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
		recs, err := election.NewStore(cli, "/leaderd", "test").History(ctx, 0)
		cancel()
		if err == nil && len(recs) == 2 && recs[1].EndReason == role.ReasonShutdown && recs[0].Open() {
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

// recordFailures is the etcd elector, reporting every failed history write.
type recordFailures struct {
	*etcdElector
	failed chan error
}

func (r recordFailures) RecordTenure(ctx context.Context, rec election.TenureRecord) error {
	err := r.etcdElector.RecordTenure(ctx, rec)
	if err != nil {
		select {
		case r.failed <- err:
		default:
		}
	}
	return err
}

// An end record that could not be written at step-down (etcd cut off) is
// written once etcd answers again, so `leaderd history` does not say
// "ended without a record".
func TestHistoryEndRecordWrittenAfterTheOutage(t *testing.T) {
	t.Parallel() // it waits out dial and call timeouts; nothing shared
	srv := etcdtest.Start(t)
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	el := recordFailures{testElector(t, proxy.Endpoint()), make(chan error, 1)}
	cfg := DefaultConfig()
	cfg.ID = "a"
	s := newSidecar(cfg, testLogger(t, "a"), el, nil, nil)
	ctx, stop := context.WithCancel(context.Background())
	defer func() {
		stop()
		waitDone(t, "the history writer to stop", s.actors.spawned.Wait)
	}()
	direct := etcdtest.NewClient(t, srv.Endpoint())

	end := s.recordTenure(ctx, el, 7, time.Now())
	waitHistory(t, direct, "the start record", func(r election.TenureRecord) bool { return r.Open() })
	proxy.CutOff()
	end(role.ReasonEtcdUnreachable)
	select {
	case <-el.failed:
	case <-time.After(waitBound):
		t.Fatal("the end record's write never failed while etcd was cut off")
	}
	proxy.Heal()
	waitHistory(t, direct, "the end record", func(r election.TenureRecord) bool { return r.EndReason == role.ReasonEtcdUnreachable })
}

// The retries end with Run: a stop during the outage is not held up.
func TestHistoryRetriesEndWithRun(t *testing.T) {
	t.Parallel() // it waits out dial and call timeouts; nothing shared
	srv := etcdtest.Start(t)
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	el := recordFailures{testElector(t, proxy.Endpoint()), make(chan error, 1)}
	cfg := DefaultConfig()
	cfg.ID = "a"
	s := newSidecar(cfg, testLogger(t, "a"), el, nil, nil)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	proxy.CutOff()
	end := s.recordTenure(ctx, el, 7, time.Now())
	select {
	case <-el.failed:
	case <-time.After(waitBound):
		t.Fatal("the start record's write never failed while etcd was cut off")
	}
	end(role.ReasonEtcdUnreachable)
	stop()
	waitDone(t, "the history writer to give up", s.actors.spawned.Wait)
}

// waitHistory waits (bounded) until tenure 7's record satisfies ok.
func waitHistory(t *testing.T, cli *clientv3.Client, what string, ok func(election.TenureRecord) bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	tick := time.NewTicker(20 * time.Millisecond) // the records are written beside the state machine
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		recs, err := election.NewStore(cli, "/leaderd", "test").History(ctx, 0)
		cancel()
		if err == nil && len(recs) == 1 && recs[0].FencingToken == 7 && ok(recs[0]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared in the history: %+v %v", what, recs, err)
		}
		<-tick.C
	}
}

func waitDone(t *testing.T, what string, wait func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait()
	}()
	select {
	case <-done:
	case <-time.After(waitBound):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// testElector is the sidecar's etcd elector for election "test" through
// endpoint, closed at the test's end.
func testElector(t *testing.T, endpoint string) *etcdElector {
	t.Helper()
	etcd := newEtcdElector(func() (*election.Store, error) {
		c, err := clientv3.New(etcdtest.ClientConfig(endpoint))
		if err != nil {
			return nil, err
		}
		return election.NewStore(c, "/leaderd", "test"), nil
	}, election.LeaseOptions{}, testLogger(t, "a"))
	t.Cleanup(etcd.Close)
	return etcd
}
