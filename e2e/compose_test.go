//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/timeline"
)

// TestBringUp: on a freshly started stack, exactly one primary within TTL +
// 5s of the sidecars' start, after every replica ran its start-up demote;
// the apps follow the roles and the primary's app takes writes.
func TestBringUp(t *testing.T) {
	s := Open(t)
	s.DumpLogsOnFailure(t)
	ctx := t.Context()

	// The sidecars' start is the reference: the test binary may start later.
	var started time.Time
	for _, r := range s.Replicas {
		at, err := s.StartedAt(ctx, r.Sidecar)
		if err != nil {
			t.Fatal(err)
		}
		started = later(started, at)
	}
	budget := TTL + 5*time.Second
	// Stable for two renew intervals (TTL/4): a first tenure that ends at
	// once (see the log of tenures below) does not count.
	primary := s.WaitForOnePrimary(t, max(time.Until(started.Add(budget)), 0)+time.Second, TTL/2)

	st, err := s.Status(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastTransition == nil || st.LastTransition.To != "primary" {
		t.Fatalf("%s: last transition %+v, want to primary", primary.ID, st.LastTransition)
	}
	took := st.LastTransition.Time.Sub(started)
	t.Logf("%s primary (fencing token %d) %s after the sidecars started", primary.ID, st.FencingToken, took.Round(time.Millisecond))
	if took > budget {
		t.Errorf("%s became primary %s after the sidecars started, want within TTL + 5s = %s", primary.ID, took, budget)
	}
	if st.FencingToken <= 0 || st.Lease == nil || st.Lease.SecondsToSafeDeadline <= 0 {
		t.Errorf("%s: fencing token %d, lease %+v", primary.ID, st.FencingToken, st.Lease)
	}

	// Every replica ran its start-up demote before anything else.
	events, err := s.Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Replicas {
		var first []timeline.Event
		for _, e := range events {
			if e.ID == r.ID && len(first) < 2 {
				first = append(first, e)
			}
		}
		want := fmt.Sprintf("demote-start %s 0 startup, demote-end %s 0 startup", r.ID, r.ID)
		if len(first) != 2 || summary(first[0]) != fmt.Sprintf("demote-start %s 0 startup", r.ID) ||
			summary(first[1]) != fmt.Sprintf("demote-end %s 0 startup", r.ID) {
			t.Errorf("%s's first hook runs: %v, want %s", r.ID, first, want)
		}
	}
	tenures := FilePairing.Tenures(events)
	if err := timeline.Check(tenures, FileRules); err != nil {
		t.Error(err)
	}
	if n := len(tenures); n == 0 || tenures[n-1].ID != primary.ID || tenures[n-1].Token != st.FencingToken || !tenures[n-1].Open() {
		t.Errorf("tenures %+v: want the last one open, %s %d", tenures, primary.ID, st.FencingToken)
	}
	if len(tenures) > 1 {
		// Not a failure: e.g. the first lease granted while etcd was still
		// electing its leader can expire before its first renewal.
		t.Logf("more than one tenure at bring-up: %+v", tenures)
	}

	// The apps follow their sidecars, and each saw its start-up demote.
	for _, r := range s.Replicas {
		role, err := s.AppState(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		sst, err := s.Status(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		want := "standby"
		if r == primary {
			want = "primary"
		}
		if role.Role != want || string(sst.Role) != want || !sst.Healthy {
			t.Errorf("%s: app %+v, sidecar role %s healthy %v; want %s", r.ID, role, sst.Role, sst.Healthy, want)
		}
		if role.Demotes < 1 {
			t.Errorf("%s: the app saw no demote (start-up demote missing): %+v", r.ID, role)
		}
		if h, ok := sst.Hooks["demote"]; !ok || h.ExitCode != 0 {
			t.Errorf("%s: last demote hook %+v, want exit 0", r.ID, h)
		}
		if r == primary && role.Token != st.FencingToken {
			t.Errorf("%s: app token %d, sidecar fencing token %d", r.ID, role.Token, st.FencingToken)
		}
	}

	// The primary's app takes a write, stamped with its token, and a
	// standby refuses one.
	id := fmt.Sprintf("bringup-%d", time.Now().UnixNano())
	code, body, err := s.Write(ctx, primary, id, "hello")
	if err != nil || code != http.StatusOK {
		t.Fatalf("write to the primary %s: %d %s %v", primary.ID, code, body, err)
	}
	for _, r := range s.Replicas {
		if r == primary {
			continue
		}
		if code, body, err := s.Write(ctx, r, id+"-standby", "x"); err != nil || code != http.StatusServiceUnavailable {
			t.Errorf("write to standby %s: %d %s %v, want 503", r.ID, code, body, err)
		}
	}
	held := 0
	for _, r := range s.Replicas {
		entries, err := s.AppLog(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.ID == id {
				held++
				if e.Token != st.FencingToken {
					t.Errorf("%s holds %s with token %d, want %d", r.ID, id, e.Token, st.FencingToken)
				}
			}
		}
	}
	if held < 2 {
		t.Errorf("write %s held by %d replicas, want a majority", id, held)
	}
}

func summary(e timeline.Event) string {
	return fmt.Sprintf("%s-%s %s %d %s", e.Hook, e.Phase, e.ID, e.Token, e.Reason)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
