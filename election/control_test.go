package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// putCandidate puts a candidate key for id on a lease of its own, as a
// campaign does, and returns it.
func putCandidate(ctx context.Context, t *testing.T, cli *clientv3.Client, id string) Candidate {
	t.Helper()
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	key := testStore(nil).CandidateKey(lease.ID)
	if _, err := cli.Put(ctx, key, `{"id":"`+id+`"}`, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v", key, err)
	}
	c, ok := testStore(nil).decodeCandidate(resp.Kvs[0])
	if !ok || c.ID != id {
		t.Fatalf("candidate %+v", c)
	}
	return c
}

// Of many resign and switchover requests racing, exactly one is stored;
// the others find it pending. With a stale request in the way (for a
// tenure that never was, expiring in 9999), still exactly one replaces it.
func TestPutRequestRacingRequestsOneWins(t *testing.T) {
	for _, stale := range []bool{false, true} {
		t.Run(fmt.Sprintf("stale=%v", stale), func(t *testing.T) { testRacingRequests(t, stale) })
	}
}

func testRacingRequests(t *testing.T, stale bool) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	leader := putCandidate(ctx, t, cli, "a")
	if stale {
		for _, name := range []string{"resign", "switchover"} {
			if _, err := cli.Put(ctx, testStore(nil).ControlPrefix()+name,
				`{"from":"nobody","fencing_token":-1,"to":"ghost","expires":"9999-12-31T23:59:59Z"}`); err != nil {
				t.Fatal(err)
			}
		}
	}
	const racers = 16
	now := time.Now()
	start := make(chan struct{})
	errs := make(chan error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := Request{From: "a", FencingToken: leader.FencingToken(), Requested: now, Expires: now.Add(time.Minute)}
			if i%2 == 1 {
				r.To = fmt.Sprintf("b%d", i)
			}
			<-start
			errs <- testStore(cli).PutRequest(ctx, r)
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrRequestPending):
			t.Fatalf("PutRequest: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing requests were stored, want exactly 1", won, racers)
	}
	c, _, err := testStore(cli).ReadControl(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, r := range []*Request{c.Resign, c.Switchover} {
		if r.For(leader) {
			ours++
		}
	}
	if ours != 1 {
		t.Fatalf("control %+v %+v, want exactly one request for %s's tenure", c.Resign, c.Switchover, leader.ID)
	}
}

// A request is pending only while it is live and names the tenure that
// leads now: a stale one (another tenure, one that never was, or no
// request at all) is replaced, however far off it expires; a pending one
// still refuses the next.
func TestPutRequestReplacesStaleRequests(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	leader := putCandidate(ctx, t, cli, "a")
	token := leader.FencingToken()
	far := "9999-12-31T23:59:59Z"
	for _, tc := range []struct{ name, key, value string }{
		{"a tenure that never was", "switchover", `{"from":"nobody","fencing_token":-1,"to":"ghost","expires":"` + far + `"}`},
		{"the leader's id, another token", "resign", fmt.Sprintf(`{"from":"a","fencing_token":%d,"expires":"%s"}`, token-1, far)},
		{"another id, the leader's token", "switchover", fmt.Sprintf(`{"from":"b","fencing_token":%d,"to":"c","expires":"%s"}`, token, far)},
		{"not a request", "resign", `{"from":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testStore(nil).ControlPrefix() + tc.key
			if _, err := cli.Put(ctx, key, tc.value); err != nil {
				t.Fatal(err)
			}
			mine := Request{From: "a", FencingToken: token, To: "b", Expires: time.Now().Add(time.Minute)}
			if err := testStore(cli).PutRequest(ctx, mine); err != nil {
				t.Fatalf("with %s=%s: PutRequest = %v, want stored", tc.key, tc.value, err)
			}
			c, _, err := testStore(cli).ReadControl(ctx)
			if err != nil || c.Switchover == nil || !c.Switchover.For(leader) || c.Switchover.To != "b" {
				t.Fatalf("switchover %+v (%v), want the new request", c.Switchover, err)
			}
			// Now one is pending: the next is refused.
			next := Request{From: "a", FencingToken: token, Expires: time.Now().Add(time.Minute)}
			if err := testStore(cli).PutRequest(ctx, next); !errors.Is(err, ErrRequestPending) {
				t.Fatalf("second PutRequest = %v, want ErrRequestPending", err)
			}
			if _, err := cli.Delete(ctx, testStore(nil).ControlPrefix(), clientv3.WithPrefix()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A switchover request without a target, or a value that is no request,
// is no request: ReadControl ignores it and a new request may be stored.
func TestReadControlIgnoresBadRequests(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	expires := time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)
	for _, tc := range []struct{ key, value string }{
		{"switchover", `{"from":"a","fencing_token":7,"expires":"` + expires + `"}`},
		{"switchover", `not json`},
		{"resign", `[1,2,3]`},
	} {
		key := testStore(nil).ControlPrefix() + tc.key
		if _, err := cli.Put(ctx, key, tc.value); err != nil {
			t.Fatal(err)
		}
		c, _, err := testStore(cli).ReadControl(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Resign != nil || c.Switchover != nil {
			t.Fatalf("%s=%s read as %+v %+v, want ignored", tc.key, tc.value, c.Resign, c.Switchover)
		}
		if err := testStore(cli).PutRequest(ctx, Request{From: "a", FencingToken: 7, Expires: time.Now().Add(time.Minute)}); err != nil {
			t.Fatalf("with %s=%s: PutRequest = %v, want stored", tc.key, tc.value, err)
		}
		if _, err := cli.Delete(ctx, testStore(nil).ControlPrefix(), clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
	}
}

// A resign request written with a "to" (by another tool) is still a
// resign: clearing it deletes the resign key, not the switchover key.
func TestResignWithATargetIsClearedFromTheResignKey(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	expires := time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)
	if _, err := cli.Put(ctx, testStore(nil).ControlPrefix()+"resign", `{"from":"a","fencing_token":7,"to":"b","expires":"`+expires+`"}`); err != nil {
		t.Fatal(err)
	}
	c, _, err := testStore(cli).ReadControl(ctx)
	if err != nil || c.Resign == nil || c.Resign.To != "" {
		t.Fatalf("read %+v, %v; want a resign without a target", c.Resign, err)
	}
	if err := testStore(cli).ClearRequest(ctx, c.Resign); err != nil {
		t.Fatal(err)
	}
	if c, _, err = testStore(cli).ReadControl(ctx); err != nil || c.Resign != nil {
		t.Fatalf("after ClearRequest: resign %+v, %v; want it gone", c.Resign, err)
	}
}
