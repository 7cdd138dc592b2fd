package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/role"
)

func TestParseAt(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Time
		err   string // a substring; "" for no error
	}{
		{"", time.Time{}, ""},
		{"+10m", now.Add(10 * time.Minute), ""},
		{" +1h30m ", now.Add(90 * time.Minute), ""},
		{"2026-12-01T02:00:00Z", time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC), ""},
		{"2026-11-30T13:00:00.5+01:00", time.Date(2026, 11, 30, 12, 0, 0, 5e8, time.UTC), ""},
		{"2026-11-30T12:00:00Z", time.Time{}, "--at: 2026-11-30T12:00:00Z is in the past (now 2026-11-30T12:00:00Z)"},
		{"2020-01-01T00:00:00Z", time.Time{}, "is in the past"},
		{"+0s", time.Time{}, `--at: want a duration more than 0, got "+0s"`},
		{"+-5m", time.Time{}, "want a duration more than 0"},
		{"+soon", time.Time{}, `--at: invalid duration "+soon": want +DURATION such as +10m`},
		{"10m", time.Time{}, `--at: want an RFC 3339 time (2026-12-01T02:00:00Z) or +DURATION (+10m), got "10m"`},
		{"tomorrow", time.Time{}, "want an RFC 3339 time"},
		{"2026-12-01 02:00", time.Time{}, "want an RFC 3339 time"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := parseAt(&boundFlag{name: "at", env: "LEADERD_AT", value: tt.value, source: fromFlag}, now)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("err = %v, want %q", err, tt.err)
			case !got.Equal(tt.want):
				t.Fatalf("at = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSwitchoverScheduleBadInput(t *testing.T) {
	base := []string{"switchover", "--election", "web", "--endpoints", "http://127.0.0.1:1"}
	tests := []struct {
		name string
		args []string
		env  envMap
		want string
	}{
		{"at in the past", []string{"--to", "b", "--at", "2020-01-01T00:00:00Z"}, nil, "leaderd switchover: --at: 2020-01-01T00:00:00Z is in the past"},
		{"bad at", []string{"--to", "b", "--at", "tomorrow"}, nil, "leaderd switchover: --at: want an RFC 3339 time"},
		{"zero offset", []string{"--to", "b", "--at", "+0s"}, nil, "leaderd switchover: --at: want a duration more than 0"},
		{"bad at from env", []string{"--to", "b"}, envMap{"LEADERD_AT": "soon"}, "leaderd switchover: LEADERD_AT: want an RFC 3339 time"},
		{"cancel with to", []string{"--cancel", "--to", "b"}, nil, "leaderd switchover: --cancel: takes no --to or --at"},
		{"cancel with at", []string{"--cancel", "--at", "+1m"}, nil, "leaderd switchover: --cancel: takes no --to or --at"},
		{"at without to", []string{"--at", "+1m"}, nil, "leaderd switchover: --to: required"},
		// The request's expiry must be a time JSON can hold (years 0-9999).
		{"expiry past 9999", []string{"--to", "b", "--at", "9999-12-31T23:59:50Z"}, nil, "leaderd switchover: --at: the request would expire after the year 9999"},
		{"at plus timeout past 9999", []string{"--to", "b", "--at", "9800-01-01T00:00:00Z", "--timeout", "2562047h"}, nil, "leaderd switchover: --at: the request would expire after the year 9999"},
		{"at on resign", []string{}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string(nil), base...), tt.args...)
			if tt.want == "" {
				args = []string{"resign", "--election", "web", "--at", "+1m"}
				tt.want = "leaderd resign: flag provided but not defined: -at"
			}
			r := invokeBounded(t, 20*time.Second, tt.env, args...)
			if r.code != exitBadInput || r.stdout != "" {
				t.Errorf("exit %d, stdout %q; want %d and nothing", r.code, r.stdout, exitBadInput)
			}
			if line := oneLineErr(t, r); !strings.HasPrefix(line, tt.want) {
				t.Errorf("stderr = %q, want %q...", line, tt.want)
			}
		})
	}
	// A LEADERD_TO kept in the environment does not refuse --cancel: only
	// the command line's --to does. (etcd is unreachable: exit 1, not 2.)
	r := invokeBounded(t, 20*time.Second, envMap{"LEADERD_TO": "b"}, append(base, "--cancel")...)
	if r.code != exitError {
		t.Errorf("--cancel with LEADERD_TO set: exit %d (%q), want %d", r.code, r.stderr, exitError)
	}
}

// statusJSON runs leaderd status --json.
func readStatusJSON(t *testing.T, endpoint, name string) jsonStatus {
	t.Helper()
	r := invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", endpoint, "--election", name, "--json")
	if r.code != exitOK {
		t.Fatalf("status: exit %d, stderr %q", r.code, r.stderr)
	}
	var st jsonStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st
}

// A scheduled switchover is stored now, with its at and an expiry
// --timeout after it; status shows it; it blocks other requests until
// --cancel deletes it; a second --cancel finds nothing and says so.
func TestScheduledSwitchoverStatusAndCancel(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	leader, _ := fakeElection(t, client, "db")
	conn := []string{"--endpoints", srv.Endpoint(), "--election", "db"}

	before := time.Now()
	r := invokeBounded(t, 20*time.Second, nil, append([]string{"switchover", "--to", "app-2", "--at", "+1h", "--wait", "0", "--timeout", "45s"}, conn...)...)
	re := fmt.Sprintf(`^switchover scheduled: app-1 \(token %d\) -> app-2 at (\S+) \(in 1h0m0s\); the request expires at (\S+)\n$`, leader.created)
	m := regexp.MustCompile(re).FindStringSubmatch(r.stdout)
	if r.code != exitOK || r.stderr != "" || m == nil {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %s", r.code, r.stdout, r.stderr, re)
	}
	sw := readControl(t, client, "db").Switchover
	switch {
	case sw == nil:
		t.Fatal("no switchover stored")
	case sw.At.Before(before.Add(time.Hour)) || sw.At.After(time.Now().Add(time.Hour)):
		t.Errorf("at = %v, want an hour from %v", sw.At, before)
	case !sw.Expires.Equal(sw.At.Add(45 * time.Second)):
		t.Errorf("expires = %v, want at + 45s (%v)", sw.Expires, sw.At.Add(45*time.Second))
	case sw.At.Format(time.RFC3339) != m[1] || sw.Expires.Format(time.RFC3339) != m[2]:
		t.Errorf("printed at %s, expires %s; stored %v, %v", m[1], m[2], sw.At, sw.Expires)
	case sw.From != "app-1" || sw.FencingToken != leader.created || sw.To != "app-2" || sw.Due(time.Now()):
		t.Errorf("stored %+v, want app-1's tenure to app-2, not yet due", sw)
	}

	// status, JSON and text.
	st := readStatusJSON(t, srv.Endpoint(), "db")
	if s := st.Switchover; s == nil || s.From != "app-1" || s.FencingToken != leader.created || s.To != "app-2" ||
		!s.At.Equal(sw.At) || !s.Expires.Equal(sw.Expires) || s.State != "scheduled" {
		t.Errorf("status --json switchover = %+v, want the stored request, scheduled", s)
	}
	r = invokeBounded(t, 20*time.Second, nil, append([]string{"status"}, conn...)...)
	line := fmt.Sprintf("switchover:     app-1 (token %d) -> app-2 at %s (in ", leader.created, m[1])
	if !strings.Contains(r.stdout, line) || !strings.Contains(r.stdout, ", expires "+m[2]+": scheduled\n") {
		t.Errorf("status text does not show the scheduled switchover %q:\n%s", line, r.stdout)
	}

	// It blocks an immediate switchover, a resign and another schedule.
	blocked := fmt.Sprintf("a switchover app-1 -> app-2 scheduled at %s is pending; leaderd switchover --cancel first", m[1])
	for _, args := range [][]string{{"switchover", "--to", "app-2"}, {"resign"}, {"switchover", "--to", "app-2", "--at", "+2h"}} {
		r = invokeBounded(t, 20*time.Second, nil, append(append(args, "--wait", "0"), conn...)...)
		wantError(t, r, exitError, "leaderd "+args[0]+": "+blocked)
	}

	// --cancel deletes it and says what it deleted.
	r = invokeBounded(t, 20*time.Second, nil, append([]string{"switchover", "--cancel"}, conn...)...)
	want := fmt.Sprintf("cancelled switchover: app-1 (token %d) -> app-2 at %s (in ", leader.created, m[1])
	if r.code != exitOK || r.stderr != "" || !strings.HasPrefix(r.stdout, want) || !strings.HasSuffix(r.stdout, ", expires "+m[2]+": scheduled\n") {
		t.Errorf("cancel: exit %d, stdout %q, stderr %q; want 0 and %q...", r.code, r.stdout, r.stderr, want)
	}
	if c := readControl(t, client, "db"); c.Switchover != nil {
		t.Errorf("after --cancel: %+v", c.Switchover)
	}
	if st := readStatusJSON(t, srv.Endpoint(), "db"); st.Switchover != nil {
		t.Errorf("status shows %+v after --cancel", st.Switchover)
	}
	// None left: a clear no-op.
	r = invokeBounded(t, 20*time.Second, nil, append([]string{"switchover", "--cancel"}, conn...)...)
	if r.code != exitOK || r.stderr != "" || r.stdout != "no switchover request to cancel\n" {
		t.Errorf("second cancel: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// A request for a tenure that no longer leads shows as stale, and
// --cancel deletes it too.
func TestStaleSwitchoverShownAndCancelled(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	leader, _ := fakeElection(t, client, "db")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	at := time.Now().Add(time.Hour).UTC()
	b, err := json.Marshal(election.Request{From: "app-1", FencingToken: leader.created - 1, To: "app-2", At: at, Expires: at.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Put(ctx, election.NewStore(nil, "/leaderd", "db").ControlPrefix()+"switchover", string(b)); err != nil {
		t.Fatal(err)
	}
	if st := readStatusJSON(t, srv.Endpoint(), "db"); st.Switchover == nil || st.Switchover.State != "stale" {
		t.Fatalf("status switchover = %+v, want stale", st.Switchover)
	}
	r := invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", srv.Endpoint(), "--election", "db")
	if !strings.Contains(r.stdout, ": stale\n") {
		t.Errorf("status text does not mark the request stale:\n%s", r.stdout)
	}
	// Stale, it blocks nothing: a new schedule replaces it.
	r = invokeBounded(t, 20*time.Second, nil, "switchover", "--endpoints", srv.Endpoint(), "--election", "db", "--to", "app-2", "--at", "+1h", "--wait", "0")
	if r.code != exitOK {
		t.Fatalf("schedule over a stale request: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := client.Put(ctx, election.NewStore(nil, "/leaderd", "db").ControlPrefix()+"switchover", string(b)); err != nil {
		t.Fatal(err)
	}
	r = invokeBounded(t, 20*time.Second, nil, "switchover", "--endpoints", srv.Endpoint(), "--election", "db", "--cancel")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, fmt.Sprintf("cancelled switchover: app-1 (token %d) -> app-2 at ", leader.created-1)) ||
		!strings.HasSuffix(r.stdout, ": stale\n") {
		t.Errorf("cancel: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// onceStored runs fn once a switchover request is stored in election
// name, in the background, bounded; the test waits for it at cleanup.
func onceStored(t *testing.T, client *clientv3.Client, name string, fn func(ctx context.Context, r *election.Request) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			rctx, rcancel := context.WithTimeout(ctx, waitTimeout)
			c, _, err := election.NewStore(client, "/leaderd", name).ReadControl(rctx)
			rcancel()
			if err == nil && c.Switchover != nil {
				if err := fn(ctx, c.Switchover); err != nil {
					t.Error(err)
				}
				return
			}
			select {
			case <-ctx.Done():
				t.Error("no switchover request stored within 20s")
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
}

// switchover --wait fails with the reason and its exit code. The keys are
// written as the replicas (or an operator) would.
func TestSwitchoverWaitFailures(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	run := func(t *testing.T, name string, extra ...string) result {
		t.Helper()
		args := append([]string{"switchover", "--endpoints", srv.Endpoint(), "--election", name, "--to", "app-2"}, extra...)
		return invokeBounded(t, 30*time.Second, nil, args...)
	}
	check := func(t *testing.T, r result, code int, re string) {
		t.Helper()
		if r.code != code || r.stdout != "" {
			t.Errorf("exit %d, stdout %q; want %d and nothing", r.code, r.stdout, code)
		}
		if line := oneLineErr(t, r); !regexp.MustCompile(re).MatchString(line) {
			t.Errorf("stderr = %q, want %s", line, re)
		}
	}

	t.Run("cancelled", func(t *testing.T) {
		old, _ := fakeElection(t, client, "c1")
		onceStored(t, client, "c1", func(ctx context.Context, r *election.Request) error {
			return election.NewStore(client, "/leaderd", "c1").CancelSwitchover(ctx, r)
		})
		r := run(t, "c1", "--wait", "10s")
		check(t, r, exitCancelled, fmt.Sprintf(`^leaderd switchover: the switchover request was cancelled: its key is gone and app-1 \(token %d\) is still the primary$`, old.created))
	})

	t.Run("cancelled while scheduled", func(t *testing.T) {
		// --wait counts from --at; a cancel before then ends the wait.
		fakeElection(t, client, "c2")
		onceStored(t, client, "c2", func(ctx context.Context, r *election.Request) error {
			return election.NewStore(client, "/leaderd", "c2").CancelSwitchover(ctx, r)
		})
		r := run(t, "c2", "--at", "+1h", "--wait", "10s")
		check(t, r, exitCancelled, `^leaderd switchover: the switchover request was cancelled`)
	})

	t.Run("expired", func(t *testing.T) {
		old, _ := fakeElection(t, client, "e1")
		r := run(t, "e1", "--wait", "20s", "--timeout", "1s")
		check(t, r, exitTimedOut, fmt.Sprintf(`^leaderd switchover: the request expired at \S+ with app-1 \(token %d\) still the primary$`, old.created))
	})

	t.Run("wait runs out", func(t *testing.T) {
		old, _ := fakeElection(t, client, "w1")
		r := run(t, "w1", "--wait", "300ms")
		check(t, r, exitTimedOut, fmt.Sprintf(`^leaderd switchover: app-2 did not promote within --wait 300ms of \S+: still app-1 \(token %d\)$`, old.created))
	})

	t.Run("etcd cut off while waiting", func(t *testing.T) {
		// The outcome is unknown, not timed out: exit 1, as documented.
		fakeElection(t, client, "x1")
		proxy, err := etcdtest.NewProxy(srv.Endpoint())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(proxy.Close)
		onceStored(t, client, "x1", func(context.Context, *election.Request) error {
			proxy.CutOff()
			return nil
		})
		r := invokeBounded(t, 30*time.Second, nil, "switchover", "--endpoints", proxy.Endpoint(), "--election", "x1", "--to", "app-2", "--wait", "3s")
		check(t, r, exitError, `^leaderd switchover: could not tell whether app-2 promoted within --wait 3s of \S+: etcd unreachable at \S+`)
	})

	t.Run("target unhealthy", func(t *testing.T) {
		old, _ := fakeElection(t, client, "u1")
		onceStored(t, client, "u1", func(ctx context.Context, _ *election.Request) error {
			lease, err := client.Grant(ctx, 60)
			if err != nil {
				return err
			}
			return election.NewStore(client, "/leaderd", "u1").PublishMember(ctx, lease.ID, member("app-2", role.Standby, false))
		})
		r := run(t, "u1", "--wait", "10s")
		check(t, r, exitTargetUnhealthy, fmt.Sprintf(`^leaderd switchover: app-2 is unhealthy; app-1 \(token %d\) stays the primary; the request stays until it expires$`, old.created))
	})

	t.Run("target stopped campaigning", func(t *testing.T) {
		fakeElection(t, client, "u2")
		cands := mustCandidates(t, client, "u2")
		onceStored(t, client, "u2", func(ctx context.Context, _ *election.Request) error {
			_, err := client.Revoke(ctx, clientv3.LeaseID(cands[1].LeaseID))
			return err
		})
		start := time.Now()
		r := run(t, "u2", "--wait", "10s")
		check(t, r, exitTargetUnhealthy, `^leaderd switchover: app-2 stopped campaigning \(standby\); app-1 \(token \d+\) stays the primary`)
		if took := time.Since(start); took < targetGrace {
			t.Errorf("exit 5 after %s, before the target was away for %s", took, targetGrace)
		}
	})

	t.Run("target re-campaigns within the grace", func(t *testing.T) {
		// A re-grant: the target's key goes and comes back on a new lease.
		// That is no reason for exit 5; the fake primary never hands over,
		// so the wait runs out (exit 3).
		fakeElection(t, client, "u3")
		cands := mustCandidates(t, client, "u3")
		onceStored(t, client, "u3", func(ctx context.Context, _ *election.Request) error {
			if _, err := client.Revoke(ctx, clientv3.LeaseID(cands[1].LeaseID)); err != nil {
				return err
			}
			time.Sleep(targetGrace / 3) // away this long: the wait sees it gone, then back
			lease, err := client.Grant(ctx, 60)
			if err != nil {
				return err
			}
			key := election.NewStore(client, "/leaderd", "u3").CandidateKey(lease.ID)
			_, err = client.Put(ctx, key, `{"id":"app-2","addr":"app-2:8008"}`, clientv3.WithLease(lease.ID))
			return err
		})
		r := run(t, "u3", "--wait", "5s")
		check(t, r, exitTimedOut, `^leaderd switchover: app-2 did not promote within --wait 5s of \S+: still app-1`)
	})
}

// status --watch redraws when the switchover changes state by the clock
// alone (at its at, at its expiry), with nothing changing in etcd.
func TestStatusWatchRedrawsAtTheSwitchoversTurns(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	leader, _ := fakeElection(t, client, "db")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	at := time.Now().Add(time.Second)
	if err := election.NewStore(client, "/leaderd", "db").PutRequest(ctx, election.Request{
		From: "app-1", FencingToken: leader.created, To: "app-2", Requested: time.Now(), At: at, Expires: at.Add(time.Second),
	}); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	stop := startWatch(t, &statusWatch{store: election.NewStore(client, "/leaderd", "db"),
		out: &out, errOut: &errOut, endpoints: srv.Endpoint()})
	defer stop()
	waitFor(t, &out, "the scheduled switchover", func(s string) bool { return strings.Contains(s, ": scheduled\n") })
	waitFor(t, &out, "a redraw at its at", func(s string) bool { return strings.Contains(s, ": pending\n") })
	if time.Now().Before(at) {
		t.Fatalf("shown pending before its at %s", at)
	}
	waitFor(t, &out, "a redraw at its expiry", func(s string) bool { return strings.Contains(s, ": expired\n") })
}
