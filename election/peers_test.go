package election

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// TestReadPeersPriorities: ReadPeers returns the candidates in campaign
// order and the member records; a value without a priority (an older
// leaderd, a hand-written key) reads as DefaultPriority, an explicit 0
// stays 0.
func TestReadPeersPriorities(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	s := testStore(cli)
	put := func(value string) clientv3.LeaseID {
		t.Helper()
		l, err := cli.Grant(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, s.CandidateKey(l.ID), value, clientv3.WithLease(l.ID)); err != nil {
			t.Fatal(err)
		}
		return l.ID
	}
	put(`{"id":"old"}`)
	zero := put(`{"id":"zero","priority":0}`)
	put(`{"id":"high","priority":250}`)
	put(`not json`)
	if _, err := cli.Put(ctx, s.MemberKey("old"), `{"id":"old","healthy":true}`); err != nil {
		t.Fatal(err)
	}
	if err := s.PublishMember(ctx, zero, Member{ID: "zero", Healthy: true, Priority: 0}); err != nil {
		t.Fatal(err)
	}
	p, err := s.ReadPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id   string
		prio int
	}{{"old", DefaultPriority}, {"zero", 0}, {"high", 250}, {"not json", DefaultPriority}}
	if len(p.Candidates) != len(want) {
		t.Fatalf("candidates %+v, want %d", p.Candidates, len(want))
	}
	for i, w := range want {
		if c := p.Candidates[i]; c.ID != w.id || c.Priority != w.prio {
			t.Errorf("candidate %d: %s priority %d, want %s %d", i, c.ID, c.Priority, w.id, w.prio)
		}
	}
	if m := p.Members["old"]; m == nil || m.Priority != DefaultPriority {
		t.Errorf("old's record %+v, want priority %d", m, DefaultPriority)
	}
	if m := p.Members["zero"]; m == nil || m.Priority != 0 || m.LeaseID != int64(zero) {
		t.Errorf("zero's record %+v, want priority 0 on lease %x", m, zero)
	}
}

// TestLeaseRenewed: a lease with its TTL left is renewed; one that has run
// down past half its TTL, or is gone, is not.
func TestLeaseRenewed(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	s := testStore(cli)
	l, err := cli.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.LeaseRenewed(ctx, int64(l.ID)); err != nil || !ok {
		t.Fatalf("fresh lease: renewed %v, %v; want true", ok, err)
	}
	// Not renewed: under half its TTL left within a second and a bit.
	deadline := time.Now().Add(bound)
	for {
		ok, err := s.LeaseRenewed(ctx, int64(l.ID))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a lease nobody renews still counts as renewed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := cli.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.LeaseRenewed(ctx, int64(l.ID)); err != nil || ok {
		t.Fatalf("revoked lease: renewed %v, %v; want false", ok, err)
	}
}
