package election

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// A scheduled request is live from the start but due only from its At; an
// immediate one (no at) is due at once. Neither is due once expired.
func TestRequestDue(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := now.Add(10 * time.Minute)
	sched := &Request{At: at, Expires: at.Add(30 * time.Second)}
	immediate := &Request{Expires: now.Add(30 * time.Second)}
	var none *Request
	for _, tc := range []struct {
		name  string
		r     *Request
		now   time.Time
		live  bool
		due   bool
		until time.Duration
	}{
		{"scheduled, before at", sched, now, true, false, 10 * time.Minute},
		{"scheduled, a moment before at", sched, at.Add(-time.Nanosecond), true, false, time.Nanosecond},
		{"scheduled, at", sched, at, true, true, 0},
		{"scheduled, after at", sched, at.Add(time.Second), true, true, 0},
		{"scheduled, expired", sched, at.Add(30 * time.Second), false, false, 0},
		{"immediate", immediate, now, true, true, 0},
		{"immediate, expired", immediate, now.Add(time.Minute), false, false, 0},
		{"nil", none, now, false, false, 0},
		{"at in 9999, expires first", &Request{At: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), Expires: now.Add(time.Second)}, now, true, false, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Sub(now)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Live(tc.now); got != tc.live {
				t.Errorf("Live = %v, want %v", got, tc.live)
			}
			if got := tc.r.Due(tc.now); got != tc.due {
				t.Errorf("Due = %v, want %v", got, tc.due)
			}
			if got := tc.r.UntilDue(tc.now); got != tc.until {
				t.Errorf("UntilDue = %v, want %v", got, tc.until)
			}
		})
	}
}

// The at field round-trips through etcd; a request without one has no
// "at" in its JSON (older readers see nothing new) and is due at once.
func TestRequestAtStored(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	leader := putCandidate(ctx, t, cli, "a")
	now := time.Now().UTC()
	at := now.Add(time.Hour)
	want := Request{From: "a", FencingToken: leader.FencingToken(), To: "b", Requested: now, At: at, Expires: at.Add(time.Minute)}
	if err := testStore(cli).PutRequest(ctx, want); err != nil {
		t.Fatal(err)
	}
	c, _, err := testStore(cli).ReadControl(ctx)
	if err != nil || c.Switchover == nil {
		t.Fatalf("read %+v, %v", c.Switchover, err)
	}
	if !c.Switchover.Same(&want) || !c.Switchover.At.Equal(at) {
		t.Fatalf("read %+v, want %+v", c.Switchover, want)
	}
	if c.Switchover.Due(time.Now()) {
		t.Fatal("a request scheduled in an hour is due now")
	}
	// Scheduled and not yet due, it is still pending: it blocks the next.
	if err := testStore(cli).PutRequest(ctx, Request{From: "a", FencingToken: leader.FencingToken(), Expires: now.Add(time.Minute)}); !errors.Is(err, ErrRequestPending) {
		t.Fatalf("PutRequest over a scheduled switchover = %v, want ErrRequestPending", err)
	}

	resp, err := cli.Get(ctx, testStore(nil).ControlPrefix()+"switchover")
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"at":`) {
		t.Fatalf("stored %v, %v; want an at field", resp.Kvs, err)
	}
	if err := testStore(cli).CancelSwitchover(ctx, c.Switchover); err != nil {
		t.Fatal(err)
	}
	if err := testStore(cli).PutRequest(ctx, Request{From: "a", FencingToken: leader.FencingToken(), To: "b", Expires: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if resp, err = cli.Get(ctx, testStore(nil).ControlPrefix()+"switchover"); err != nil || len(resp.Kvs) != 1 || strings.Contains(string(resp.Kvs[0].Value), `"at"`) {
		t.Fatalf("stored %v, %v; want no at field", resp.Kvs, err)
	}
	if c, _, err = testStore(cli).ReadControl(ctx); err != nil || !c.Switchover.Due(time.Now()) {
		t.Fatalf("an immediate request %+v (%v) is not due", c.Switchover, err)
	}
}

// CancelSwitchover deletes the request it was given and nothing newer: a
// request replaced since it was read, or already gone, is left alone and
// reported as ErrRequestChanged.
func TestCancelSwitchoverIsGuarded(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	leader := putCandidate(ctx, t, cli, "a")
	put := func(to string) *Request {
		t.Helper()
		now := time.Now()
		r := Request{From: "a", FencingToken: leader.FencingToken(), To: to, Requested: now, At: now.Add(time.Hour), Expires: now.Add(time.Hour + time.Minute)}
		// Written directly: PutRequest would refuse the second one.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, testStore(nil).ControlPrefix()+"switchover", string(b)); err != nil {
			t.Fatal(err)
		}
		c, _, err := testStore(cli).ReadControl(ctx)
		if err != nil || c.Switchover == nil || c.Switchover.To != to {
			t.Fatalf("read %+v, %v", c.Switchover, err)
		}
		return c.Switchover
	}
	shown := put("b")
	newer := put("c")
	if err := testStore(cli).CancelSwitchover(ctx, shown); !errors.Is(err, ErrRequestChanged) {
		t.Fatalf("cancelling a replaced request = %v, want ErrRequestChanged", err)
	}
	if c, _, err := testStore(cli).ReadControl(ctx); err != nil || !c.Switchover.Same(newer) {
		t.Fatalf("after a refused cancel: %+v, %v; want the newer request kept", c.Switchover, err)
	}
	if err := testStore(cli).CancelSwitchover(ctx, newer); err != nil {
		t.Fatalf("cancelling the request as read = %v", err)
	}
	if c, _, err := testStore(cli).ReadControl(ctx); err != nil || c.Switchover != nil {
		t.Fatalf("after cancel: %+v, %v; want none", c.Switchover, err)
	}
	if err := testStore(cli).CancelSwitchover(ctx, newer); !errors.Is(err, ErrRequestChanged) {
		t.Fatalf("cancelling a request already gone = %v, want ErrRequestChanged", err)
	}
}
