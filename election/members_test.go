package election

import (
	"context"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// TestWatchMemberReportsEveryChange: the record as it is at once, then each
// put and delete, in order, until ctx ends.
func TestWatchMemberReportsTheRecordAfterEachChange(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	lease, err := cli.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan *Member, 16)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		testStore(cli).WatchMember(wctx, "a", func(m *Member, err error) {
			if err == nil {
				seen <- m
			}
		})
	}()
	defer func() { stop(); <-done }()
	next := func(what string) *Member {
		t.Helper()
		select {
		case m := <-seen:
			return m
		case <-time.After(bound):
			t.Fatalf("no report of %s", what)
			return nil
		}
	}
	if m := next("the first read"); m != nil {
		t.Fatalf("first report %+v, want none", m)
	}
	put := func(m Member) {
		t.Helper()
		if err := testStore(cli).PublishMember(ctx, lease.ID, m); err != nil {
			t.Fatal(err)
		}
	}
	put(Member{ID: "a", Role: "primary", Phase: "promoting", FencingToken: 7})
	put(Member{ID: "a", Role: "primary", Phase: "primary", FencingToken: 7})
	// Another member's record is not reported.
	put(Member{ID: "ab", Role: "standby", Phase: "campaigning"})
	// Every change is followed by a report of the record as it is then; a
	// burst of changes may be folded into its latest state.
	for {
		m := next("the primary record")
		if m == nil {
			t.Fatal("report of no record before the delete")
		}
		if m.ID != "a" || m.FencingToken != 7 || m.LeaseID != int64(lease.ID) {
			t.Fatalf("report %+v, want a's record with token 7 on its lease", m)
		}
		if m.Phase == "primary" {
			break
		}
	}
	if _, err := cli.Delete(ctx, testStore(nil).MemberKey("a")); err != nil {
		t.Fatal(err)
	}
	for {
		m := next("the delete")
		if m == nil {
			break
		}
		if m.ID != "a" || m.Phase != "primary" {
			t.Fatalf("report %+v before the delete's, want a's primary record", m)
		}
	}
}
