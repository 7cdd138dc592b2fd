package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// readControl reads the election's control state, bounded.
func readControl(t *testing.T, c *clientv3.Client, electionName string) election.Control {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ctl, _, err := election.NewStore(c, "/leaderd", electionName).ReadControl(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ctl
}

// wantError checks an exit code and the one line on stderr.
func wantError(t *testing.T, r result, code int, line string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	if got := oneLineErr(t, r); got != line {
		t.Errorf("stderr = %q, want %q", got, line)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
}

func TestPauseResume(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	conn := []string{"--endpoints", srv.Endpoint(), "--election", "web"}

	for _, step := range []struct {
		cmd, out string
		paused   bool
	}{
		{"pause", "paused: standbys will not campaign; an unhealthy primary stays\n", true},
		{"pause", "paused: standbys will not campaign; an unhealthy primary stays\n", true}, // idempotent
		{"resume", "resumed\n", false},
		{"resume", "resumed\n", false}, // idempotent
	} {
		r := invokeBounded(t, 20*time.Second, nil, append([]string{step.cmd}, conn...)...)
		if r.code != exitOK || r.stderr != "" || r.stdout != step.out {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q; want 0 and %q", step.cmd, r.code, r.stdout, r.stderr, step.out)
		}
		if got := readControl(t, client, "web").Paused; got != step.paused {
			t.Errorf("after %s: paused = %v, want %v", step.cmd, got, step.paused)
		}
		if got := readControl(t, client, "web2").Paused; got {
			t.Errorf("after %s: another election is paused", step.cmd)
		}
	}

	// The environment twins work as for status.
	env := envMap{"LEADERD_ENDPOINTS": srv.Endpoint(), "LEADERD_ELECTION": "web"}
	if r := invokeBounded(t, 20*time.Second, env, "pause"); r.code != exitOK || !readControl(t, client, "web").Paused {
		t.Errorf("pause from the environment: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestControlBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  envMap
		want string // a substring of the one line
	}{
		{"no election", []string{"pause"}, nil, "--election"},
		{"bad election", []string{"resume", "--election", "a b"}, nil, "--election"},
		{"bad endpoint", []string{"resign", "--election", "web", "--endpoints", "ftp://x"}, nil, "--endpoints"},
		{"unknown flag", []string{"pause", "--election", "web", "--wait", "1s"}, nil, "-wait"},
		{"switchover without --to", []string{"switchover", "--election", "web"}, nil, "--to: required"},
		{"bad wait", []string{"resign", "--election", "web", "--wait", "soon"}, nil, "--wait: invalid duration"},
		{"negative wait", []string{"switchover", "--election", "web", "--to", "b", "--wait", "-1s"}, nil, "--wait: want 0 or more"},
		{"zero timeout", []string{"resign", "--election", "web", "--timeout", "0"}, nil, "--timeout: want more than 0"},
		{"bad wait from env", []string{"resign", "--election", "web"}, envMap{"LEADERD_WAIT": "x"}, "LEADERD_WAIT: invalid duration"},
		{"argument", []string{"resign", "--election", "web", "now"}, nil, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invokeBounded(t, 20*time.Second, tt.env, tt.args...)
			if r.code != exitBadInput {
				t.Errorf("exit %d, want %d", r.code, exitBadInput)
			}
			line := oneLineErr(t, r)
			if prefix := "leaderd " + tt.args[0] + ": "; !strings.HasPrefix(line, prefix) || !strings.Contains(line, tt.want) {
				t.Errorf("stderr = %q, want %q...%q", line, prefix, tt.want)
			}
		})
	}
}

func TestControlHelp(t *testing.T) {
	for _, cmd := range []string{"resign", "switchover", "pause", "resume"} {
		viaHelp := invoke(nil, "help", cmd)
		viaFlag := invoke(nil, cmd, "--help")
		if viaHelp.code != exitOK || viaFlag.code != exitOK || viaHelp.stdout != viaFlag.stdout ||
			!strings.Contains(viaHelp.stdout, "Usage: leaderd "+cmd) || !strings.Contains(viaHelp.stdout, "--endpoints") {
			t.Errorf("%s: help exit %d / %d, output %q", cmd, viaHelp.code, viaFlag.code, viaHelp.stdout)
		}
		if top := invoke(nil, "--help"); !strings.Contains(top.stdout, "  "+cmd+" ") {
			t.Errorf("leaderd --help does not list %s", cmd)
		}
	}
}

func TestControlUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close()
	// The four wait out their call timeouts side by side.
	cmds := [][]string{{"pause"}, {"resume"}, {"resign"}, {"switchover", "--to", "b"}}
	results := make([]chan result, len(cmds))
	for i, args := range cmds {
		results[i] = make(chan result, 1)
		go func() { results[i] <- invoke(nil, append(args, "--endpoints", endpoint, "--election", "web")...) }()
	}
	bound := time.After(20 * time.Second)
	for i, args := range cmds {
		var r result
		select {
		case r = <-results[i]:
		case <-bound:
			t.Fatalf("leaderd %s did not return within 20s", args[0])
		}
		if r.code != exitError || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q; want %d and nothing", args[0], r.code, r.stdout, exitError)
		}
		if line, want := oneLineErr(t, r), "leaderd "+args[0]+": etcd unreachable at "+endpoint+": "; !strings.HasPrefix(line, want) {
			t.Errorf("stderr = %q, want it to start with %q", line, want)
		}
	}
}

func TestResignNoLeader(t *testing.T) {
	srv := etcdtest.Start(t)
	r := invokeBounded(t, 20*time.Second, nil, "resign", "--endpoints", srv.Endpoint(), "--election", "web")
	wantError(t, r, exitError, "leaderd resign: no primary to resign")
	r = invokeBounded(t, 20*time.Second, nil, "switchover", "--endpoints", srv.Endpoint(), "--election", "web", "--to", "app-2")
	wantError(t, r, exitError, "leaderd switchover: no primary to switch over from")
}

// fakeElection is app-1 leading, app-2 a healthy campaigning standby,
// app-3 registered but unhealthy, app-4 healthy but not campaigning.
func fakeElection(t *testing.T, c *clientv3.Client, name string) (leader, standby candidate) {
	t.Helper()
	leader = putCandidate(t, c, "/leaderd", name, "app-1")
	standby = putCandidate(t, c, "/leaderd", name, "app-2")
	publishMember(t, c, "/leaderd", name, member("app-1", "primary", true))
	publishMember(t, c, "/leaderd", name, member("app-2", "standby", true))
	publishMember(t, c, "/leaderd", name, member("app-3", "standby", false))
	publishMember(t, c, "/leaderd", name, member("app-4", "standby", true))
	return leader, standby
}

func TestSwitchoverRefused(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	fakeElection(t, client, "db")
	conn := []string{"--endpoints", srv.Endpoint(), "--election", "db", "--wait", "0"}

	tests := []struct{ to, want string }{
		{"app-9", "unknown member app-9 (members: app-1, app-2, app-3, app-4)"},
		{"app-3", "app-3 is unhealthy"},
		{"app-4", "app-4 is not campaigning (paused, --no-failover, or unhealthy)"},
		{"app-1", "app-1 is already the primary (token "},
	}
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			r := invokeBounded(t, 20*time.Second, nil, append([]string{"switchover", "--to", tt.to}, conn...)...)
			if r.code != exitError || r.stdout != "" {
				t.Errorf("exit %d, stdout %q; want %d and nothing", r.code, r.stdout, exitError)
			}
			if line := oneLineErr(t, r); !strings.HasPrefix(line, "leaderd switchover: "+tt.want) {
				t.Errorf("stderr = %q, want %q", line, "leaderd switchover: "+tt.want)
			}
			if sw := readControl(t, client, "db").Switchover; sw != nil {
				t.Errorf("a refused switchover stored %+v", sw)
			}
		})
	}

	t.Run("no members", func(t *testing.T) {
		putCandidate(t, client, "/leaderd", "bare", "x-1")
		r := invokeBounded(t, 20*time.Second, nil, "switchover", "--endpoints", srv.Endpoint(), "--election", "bare", "--to", "x-2")
		wantError(t, r, exitError, "leaderd switchover: unknown member x-2 (members: none registered)")
	})

	t.Run("paused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := election.NewStore(client, "/leaderd", "db").SetPaused(ctx, true); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := election.NewStore(client, "/leaderd", "db").SetPaused(ctx, false); err != nil {
				t.Error(err)
			}
		}()
		r := invokeBounded(t, 20*time.Second, nil, append([]string{"switchover", "--to", "app-2"}, conn...)...)
		wantError(t, r, exitError, "leaderd switchover: the election is paused; leaderd resume first")
		r = invokeBounded(t, 20*time.Second, nil, append([]string{"resign"}, conn...)...)
		wantError(t, r, exitError, "leaderd resign: the election is paused; leaderd resume first")
		if c := readControl(t, client, "db"); c.Switchover != nil || c.Resign != nil {
			t.Errorf("refused requests were stored: %+v", c)
		}
	})
}

// checkRequest checks a stored request against the tenure and lifetime
// asked for.
func checkRequest(t *testing.T, r *election.Request, from candidate, to string, lifetime time.Duration, before time.Time) {
	t.Helper()
	switch {
	case r == nil:
		t.Fatal("no request stored")
	case r.From != from.id || r.FencingToken != from.created || r.To != to:
		t.Errorf("request = %+v, want from %s token %d to %q", r, from.id, from.created, to)
	case r.Requested.Before(before.Add(-time.Second)) || r.Requested.After(time.Now().Add(time.Second)):
		t.Errorf("requested = %v, want about %v", r.Requested, before)
	case r.Expires.Sub(r.Requested) != lifetime:
		t.Errorf("expires - requested = %v, want %v", r.Expires.Sub(r.Requested), lifetime)
	case !r.Live(time.Now()):
		t.Errorf("request %+v is not live", r)
	}
}

func TestResignStoresRequest(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	leader, _ := fakeElection(t, client, "db")
	args := []string{"resign", "--endpoints", srv.Endpoint(), "--election", "db", "--wait", "0", "--timeout", "45s"}

	before := time.Now()
	r := invokeBounded(t, 20*time.Second, nil, args...)
	want := fmt.Sprintf("resign requested: app-1 (token %d); the request expires in 45s\n", leader.created)
	if r.code != exitOK || r.stderr != "" || r.stdout != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", r.code, r.stdout, r.stderr, want)
	}
	c := readControl(t, client, "db")
	checkRequest(t, c.Resign, leader, "", 45*time.Second, before)
	if c.Switchover != nil {
		t.Errorf("switchover = %+v, want none", c.Switchover)
	}

	// A second request while the first is live is refused, of either kind.
	r = invokeBounded(t, 20*time.Second, nil, args...)
	wantError(t, r, exitError, "leaderd resign: "+election.ErrRequestPending.Error()+"; retry after it expires")
	r = invokeBounded(t, 20*time.Second, nil, "switchover", "--endpoints", srv.Endpoint(), "--election", "db", "--to", "app-2", "--wait", "0")
	wantError(t, r, exitError, "leaderd switchover: "+election.ErrRequestPending.Error()+"; retry after it expires")
}

func TestSwitchoverStoresRequest(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	leader, _ := fakeElection(t, client, "db")

	before := time.Now()
	r := invokeBounded(t, 20*time.Second, nil, "switchover", "--endpoints", srv.Endpoint(), "--election", "db", "--to", "app-2", "--wait", "0")
	want := fmt.Sprintf("switchover requested: app-1 (token %d) -> app-2; the request expires in 30s\n", leader.created)
	if r.code != exitOK || r.stderr != "" || r.stdout != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", r.code, r.stdout, r.stderr, want)
	}
	c := readControl(t, client, "db")
	checkRequest(t, c.Switchover, leader, "app-2", 30*time.Second, before)
	if c.Resign != nil {
		t.Errorf("resign = %+v, want none", c.Resign)
	}
}

// TestControlWait drives the wait with keys written as replicas would:
// once the request is stored, the given leases are revoked (the old
// leader's key goes) and, if next is set, a key for next is created.
func TestControlWait(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())

	handOff := func(t *testing.T, name string, revoke []clientv3.LeaseID, next string, promoted ...election.Member) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		done := make(chan struct{})
		t.Cleanup(func() { cancel(); <-done })
		go func() {
			defer close(done)
			for {
				rctx, rcancel := context.WithTimeout(ctx, waitTimeout)
				c, _, err := election.NewStore(client, "/leaderd", name).ReadControl(rctx)
				rcancel()
				if err == nil && (c.Resign != nil || c.Switchover != nil) {
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
			for _, l := range revoke {
				if _, err := client.Revoke(ctx, l); err != nil {
					t.Error(err)
					return
				}
			}
			// The new primary's record once its promote ended.
			for _, m := range promoted {
				lease, err := client.Grant(ctx, 60)
				if err == nil {
					err = election.NewStore(client, "/leaderd", name).PublishMember(ctx, lease.ID, m)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
			if next == "" {
				return
			}
			lease, err := client.Grant(ctx, 60)
			if err == nil {
				key := election.NewStore(client, "/leaderd", name).CandidateKey(lease.ID)
				_, err = client.Put(ctx, key, `{"id":"`+next+`"}`, clientv3.WithLease(lease.ID))
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}

	t.Run("resigned", func(t *testing.T) {
		old, standby := fakeElection(t, client, "r1")
		handOff(t, "r1", []clientv3.LeaseID{old.lease}, "")
		r := invokeBounded(t, 30*time.Second, nil, "resign", "--endpoints", srv.Endpoint(), "--election", "r1", "--wait", "10s")
		re := fmt.Sprintf(`^resigned: app-1 \(token %d\) -> app-2 \(token %d\) in \S+\n$`, old.created, standby.created)
		if r.code != exitOK || r.stderr != "" || !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %s", r.code, r.stdout, r.stderr, re)
		}
	})

	t.Run("switched over", func(t *testing.T) {
		old, standby := fakeElection(t, client, "s1")
		m := member("app-2", role.Primary, true)
		m.FencingToken = standby.created
		handOff(t, "s1", []clientv3.LeaseID{old.lease}, "", m)
		r := invokeBounded(t, 30*time.Second, nil, "switchover", "--endpoints", srv.Endpoint(), "--election", "s1", "--to", "app-2", "--wait", "10s")
		re := fmt.Sprintf(`^switched over: app-1 -> app-2 \(token %d\) in \S+; hand-off \S+ \(observed: old primary's key gone to new primary's promote end\)\n$`, standby.created)
		if r.code != exitOK || r.stderr != "" || !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %s", r.code, r.stdout, r.stderr, re)
		}
	})

	t.Run("someone else", func(t *testing.T) {
		// app-2 drops out too and app-9 takes over: reported, exit 1.
		old, standby := fakeElection(t, client, "s2")
		handOff(t, "s2", []clientv3.LeaseID{old.lease, standby.lease}, "app-9")
		r := invokeBounded(t, 30*time.Second, nil, "switchover", "--endpoints", srv.Endpoint(), "--election", "s2", "--to", "app-2", "--wait", "10s")
		re := `^leaderd switchover: app-1 stepped down but app-9 \(token \d+\) became the primary, not app-2$`
		if r.code != exitError || r.stdout != "" {
			t.Errorf("exit %d, stdout %q; want %d and nothing", r.code, r.stdout, exitError)
		}
		if line := oneLineErr(t, r); !regexp.MustCompile(re).MatchString(line) {
			t.Errorf("stderr = %q, want %s", line, re)
		}
	})

	t.Run("no primary", func(t *testing.T) {
		old, standby := fakeElection(t, client, "n1")
		handOff(t, "n1", []clientv3.LeaseID{old.lease, standby.lease}, "")
		r := invokeBounded(t, 30*time.Second, nil, "resign", "--endpoints", srv.Endpoint(), "--election", "n1", "--wait", "1s")
		re := fmt.Sprintf(`^leaderd resign: no primary after \S+: app-1 \(token %d\) stepped down and no replica has taken over yet$`, old.created)
		if r.code != exitError {
			t.Errorf("exit %d, want %d", r.code, exitError)
		}
		if line := oneLineErr(t, r); !regexp.MustCompile(re).MatchString(line) {
			t.Errorf("stderr = %q, want %s", line, re)
		}
	})

	t.Run("wait runs out", func(t *testing.T) {
		old, _ := fakeElection(t, client, "w1")
		r := invokeBounded(t, 30*time.Second, nil, "resign", "--endpoints", srv.Endpoint(), "--election", "w1", "--wait", "300ms")
		if r.code != exitError || r.stdout != "" {
			t.Errorf("exit %d, stdout %q; want %d and nothing", r.code, r.stdout, exitError)
		}
		re := fmt.Sprintf(`^leaderd resign: still app-1 \(token %d\) after \S+; the request stays until it expires$`, old.created)
		if line := oneLineErr(t, r); !regexp.MustCompile(re).MatchString(line) {
			t.Errorf("stderr = %q, want %s", line, re)
		}
	})
}

func mustCandidates(t *testing.T, c *clientv3.Client, name string) []election.Candidate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cands, _, err := election.NewStore(c, "/leaderd", name).Candidates(ctx)
	if err != nil || len(cands) == 0 {
		t.Fatalf("candidates: %v, %v", cands, err)
	}
	return cands
}

// TestControlReplicas runs three real sidecars in-process (no hooks, no
// HTTP) and drives them with switchover and resign.
func TestControlReplicas(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("replicas did not stop within 30s")
		}
	}()
	ids := []string{"r1", "r2", "r3"}
	for _, id := range ids {
		cfg := sidecar.DefaultConfig()
		cfg.Endpoints = []string{srv.Endpoint()}
		cfg.Election = "e2e"
		cfg.ID = id
		cfg.TTL = 3 * time.Second
		cfg.DemoteTimeout = time.Second
		cfg.Listen = "off"
		s, err := sidecar.New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%s: Run: %v", id, err)
			}
		}()
		// Start them one after another, so campaign order is r1, r2, r3.
		waitCandidates(t, client, "e2e", func(c []election.Candidate) bool { return len(c) == len(ids[:indexOf(ids, id)+1]) })
	}
	waitMembers(t, client, "e2e", len(ids))

	conn := []string{"--endpoints", srv.Endpoint(), "--election", "e2e", "--wait", "20s"}
	cands := mustCandidates(t, client, "e2e")
	leader, last := cands[0], cands[len(cands)-1]
	// Hand over to the last in line: the one in the middle must yield.
	r := invokeBounded(t, 40*time.Second, nil, append([]string{"switchover", "--to", last.ID}, conn...)...)
	re := fmt.Sprintf(`^switched over: %s -> %s \(token \d+\) in \S+; hand-off \S+ \(observed: [^)]+\)\n$`, leader.ID, last.ID)
	if r.code != exitOK || !regexp.MustCompile(re).MatchString(r.stdout) {
		t.Fatalf("switchover: exit %d, stdout %q, stderr %q; want 0 and %s", r.code, r.stdout, r.stderr, re)
	}
	// The new primary's record shows the token printed: it has promoted.
	waitCandidates(t, client, "e2e", func(c []election.Candidate) bool { return len(c) == len(ids) && c[0].ID == last.ID })
	if !strings.Contains(r.stdout, fmt.Sprintf("(token %d)", mustCandidates(t, client, "e2e")[0].FencingToken())) {
		t.Errorf("switchover printed %q, not the new primary's token", r.stdout)
	}

	// Scheduled: nothing before its at; --wait counts from there.
	leader, next := mustCandidates(t, client, "e2e")[0], mustCandidates(t, client, "e2e")[1]
	asked := time.Now()
	r = invokeBounded(t, 40*time.Second, nil, append([]string{"switchover", "--to", next.ID, "--at", "+1s"}, conn...)...)
	re = fmt.Sprintf(`^switched over: %s -> %s \(token \d+\) in \S+; hand-off \S+ \(observed: [^)]+\)\n$`, leader.ID, next.ID)
	if r.code != exitOK || !regexp.MustCompile(re).MatchString(r.stdout) {
		t.Fatalf("scheduled switchover: exit %d, stdout %q, stderr %q; want 0 and %s", r.code, r.stdout, r.stderr, re)
	}
	if took := time.Since(asked); took < time.Second {
		t.Fatalf("a switchover --at +1s --wait returned after %s", took)
	}
	last = next

	// Everyone campaigns again (the request was handled), then resign.
	waitCandidates(t, client, "e2e", func(c []election.Candidate) bool { return len(c) == len(ids) && c[0].ID == last.ID })
	r = invokeBounded(t, 40*time.Second, nil, append([]string{"resign"}, conn...)...)
	re = fmt.Sprintf(`^resigned: %s \(token \d+\) -> r\d \(token \d+\) in \S+\n$`, last.ID)
	if r.code != exitOK || !regexp.MustCompile(re).MatchString(r.stdout) {
		t.Fatalf("resign: exit %d, stdout %q, stderr %q; want 0 and %s", r.code, r.stdout, r.stderr, re)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// waitCandidates polls the candidates until ok, bounded.
func waitCandidates(t *testing.T, c *clientv3.Client, name string, ok func([]election.Candidate) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		cands, _, err := election.NewStore(c, "/leaderd", name).Candidates(ctx)
		cancel()
		if err == nil && ok(cands) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("candidates did not reach the expected state within 20s: %+v, %v", cands, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitMembers polls until n members are registered, bounded.
func waitMembers(t *testing.T, c *clientv3.Client, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		ms, err := election.NewStore(c, "/leaderd", name).Members(ctx)
		cancel()
		if err == nil && len(ms) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("members did not reach %d within 20s: %+v, %v", n, ms, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStatusShowsPaused(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := election.NewStore(cli, "/leaderd", "web").SetPaused(ctx, true); err != nil {
		t.Fatal(err)
	}
	rep, _, err := readStatus(ctx, election.NewStore(cli, "/leaderd", "web"))
	if err != nil || !rep.Paused {
		t.Fatalf("status paused=%v err=%v", rep.Paused, err)
	}
	var b strings.Builder
	printStatus(&b, rep, time.Now())
	if !strings.Contains(b.String(), "paused:") {
		t.Fatalf("text status does not say paused:\n%s", b.String())
	}
}
