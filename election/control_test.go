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

// Of many resign and switchover requests racing, exactly one is stored;
// the others find it pending.
func TestPutRequestRacingRequestsOneWins(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	const racers = 16
	now := time.Now()
	start := make(chan struct{})
	errs := make(chan error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := Request{From: "a", FencingToken: 7, Requested: now, Expires: now.Add(time.Minute)}
			if i%2 == 1 {
				r.To = fmt.Sprintf("b%d", i)
			}
			<-start
			errs <- PutRequest(ctx, cli, "/leaderd", "t", r)
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
	c, _, err := ReadControl(ctx, cli, "/leaderd", "t")
	if err != nil {
		t.Fatal(err)
	}
	if (c.Resign != nil) == (c.Switchover != nil) {
		t.Fatalf("control %+v, want exactly one request", c)
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
		key := ControlPrefix("/leaderd", "t") + tc.key
		if _, err := cli.Put(ctx, key, tc.value); err != nil {
			t.Fatal(err)
		}
		c, _, err := ReadControl(ctx, cli, "/leaderd", "t")
		if err != nil {
			t.Fatal(err)
		}
		if c.Resign != nil || c.Switchover != nil {
			t.Fatalf("%s=%s read as %+v %+v, want ignored", tc.key, tc.value, c.Resign, c.Switchover)
		}
		if err := PutRequest(ctx, cli, "/leaderd", "t", Request{From: "a", FencingToken: 7, Expires: time.Now().Add(time.Minute)}); err != nil {
			t.Fatalf("with %s=%s: PutRequest = %v, want stored", tc.key, tc.value, err)
		}
		if _, err := cli.Delete(ctx, ControlPrefix("/leaderd", "t"), clientv3.WithPrefix()); err != nil {
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
	if _, err := cli.Put(ctx, ControlPrefix("/leaderd", "t")+"resign", `{"from":"a","fencing_token":7,"to":"b","expires":"`+expires+`"}`); err != nil {
		t.Fatal(err)
	}
	c, _, err := ReadControl(ctx, cli, "/leaderd", "t")
	if err != nil || c.Resign == nil || c.Resign.To != "" {
		t.Fatalf("read %+v, %v; want a resign without a target", c.Resign, err)
	}
	if err := ClearRequest(ctx, cli, "/leaderd", "t", c.Resign); err != nil {
		t.Fatal(err)
	}
	if c, _, err = ReadControl(ctx, cli, "/leaderd", "t"); err != nil || c.Resign != nil {
		t.Fatalf("after ClearRequest: resign %+v, %v; want it gone", c.Resign, err)
	}
}
