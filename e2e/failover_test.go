//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/timeline"
)

// TestFailover runs the fault scenarios in a fixed order, as subtests of
// one test, on the one compose stack; each leaves the stack healthy (one
// primary, two healthy standbys) for the next, and a failed one stops the
// sequence. Meanwhile:
//
//   - a Monitor asks the three sidecars' /primary every 50ms (never two
//     primaries; the share of time with one);
//   - a Writer keeps writing to whichever app is the only primary (no write
//     acknowledged under a stale fencing token; no acknowledged write lost).
//
// Timing: the hooks' shared timeline file has whole-second (busybox)
// stamps, too coarse; the tests use the sidecars' logs instead (see
// hooklog.go: the docker daemon's nanosecond stamps, on the host clock the
// test reads too, a few ms late; complete across pause, disconnect, kill
// and restart), and, for a new primary's promote, the precise start and end
// of its /status hook result (the report shows the largest difference seen
// between the two). A demote end from the log compared with a promote start
// from /status would err on the strict side by those few ms: orderings
// compare log with log. The fault instants are taken just
// before the docker command is sent, so a measured duration includes the
// command's own latency (conservative).
//
// The demo app keeps its log in memory: a stopped or killed app comes back
// empty and catches up only through the writes that follow (a new primary's
// promote merges the logs of the replicas it can reach). The scenarios that
// stop a primary therefore stop its sidecar first (the demote goes through
// the app), wait for the next primary to be serving (its promote has merged
// the old primary's log), and only then stop the app, as one drains a node.
func TestFailover(t *testing.T) {
	s := Open(t)
	s.DumpLogsOnFailure(t)
	began := time.Now()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := &failover{s: s, report: &Report{}, exempt: map[int64]string{}, began: began}
	f.mon = s.StartMonitor(ctx)
	t.Cleanup(func() { cancel(); f.mon.Wait() })
	t.Cleanup(func() { f.diagnose(t) })

	f.waitHealthy(t, "the stack before the scenarios", 60*time.Second)
	wctx, stopWriter := context.WithCancel(ctx)
	f.writer = s.StartWriter(wctx, f.mon)
	f.stopWriter = stopWriter
	t.Cleanup(func() { stopWriter(); f.writer.Wait() })

	scenarios := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"2-kill-primary", f.killPrimary},
		{"3-stop-primary", f.stopPrimary},
		{"4-disconnect-primary", f.disconnectPrimary},
		{"5-pause-primary", f.pausePrimary},
		{"6-etcd-member-and-quorum-loss", f.etcdLoss},
		{"7-rolling-restart", f.rollingRestart},
		{"8-writes-and-tenures", f.checkWrites},
	}
	for _, sc := range scenarios {
		if !t.Run(sc.name, sc.fn) {
			t.Fatalf("scenario %s failed; the later ones were not run (they need a healthy stack)", sc.name)
		}
	}

	took := time.Since(began)
	f.report.Add("suite", "TestFailover run time", took)
	table := f.report.Table()
	fmt.Printf("\n=== e2e failover figures (TTL %s, demote timeout %s; 2 cores) ===\n%s\n", TTL, DemoteTimeout, table)
	if err := f.report.Write(fmt.Sprintf("e2e failover figures (docker compose, TTL %s, demote timeout %s), %s",
		TTL, DemoteTimeout, time.Now().UTC().Format(time.RFC3339))); err != nil {
		t.Errorf("E2E_REPORT: %v", err)
	}
}

type failover struct {
	s          *Stack
	mon        *Monitor
	writer     *Writer
	stopWriter context.CancelFunc
	report     *Report
	began      time.Time
	// exempt: tenures allowed to end after the next began (or never), with
	// why.
	exempt map[int64]string
	// staleWrites: the writes sent to a stale (woken) primary's app.
	staleWrites []WriteResult
	// maxSkew: the largest difference seen between a hook's stamps in the
	// sidecar's log (docker's) and in its /status (leaderd's).
	maxSkew time.Duration
}

// --- scenario 2 -------------------------------------------------------------

// killPrimary: docker kill (SIGKILL) of the primary's sidecar and app, no
// demote and no resign. Another replica is primary within TTL + etcd's
// election timeout (1s) + 2s. The killed pair is started again and must
// rejoin as a standby.
func (f *failover) killPrimary(t *testing.T) {
	s, ctx := f.s, t.Context()
	p, token := f.waitHealthy(t, "before the kill", 30*time.Second)

	at := time.Now()
	if err := s.CrashReplica(ctx, p); err != nil {
		t.Fatalf("docker kill %s %s: %v", p.Sidecar, p.App, err)
	}
	f.exempt[token] = "crashed: docker kill of " + p.ID
	budget := TTL + time.Second + 2*time.Second
	q := f.waitNewPrimary(t, p, at, budget+10*time.Second)
	promote, _ := f.promoteAfter(t, q, at)
	took := promote.End.Sub(at)
	f.report.Add("2 kill primary", "kill -> new primary's promote started", promote.Start.Sub(at))
	f.report.Add("2 kill primary", "kill -> new primary serving (promote ended)", took)
	t.Logf("%s killed (token %d); %s promoted (token %d) %s later", p.ID, token, q.ID, promote.Token, took.Round(time.Millisecond))
	if took > budget {
		t.Errorf("new primary %s serving %s after the kill of %s, want within TTL + 1s + 2s = %s", q.ID, took, p.ID, budget)
	}

	f.restart(t, p)
}

// --- scenario 3 -------------------------------------------------------------

// stopPrimary: docker stop (SIGTERM) of the primary: the sidecar first, so
// its demote goes through its app; then the app. The old demote has ended
// before the new promote starts, and the sidecar exits 0.
func (f *failover) stopPrimary(t *testing.T) {
	s, ctx := f.s, t.Context()
	p, token := f.waitHealthy(t, "before the stop", 30*time.Second)

	at := time.Now()
	if err := s.Stop(ctx, 10*time.Second, p.Sidecar); err != nil {
		t.Fatalf("docker stop %s: %v", p.Sidecar, err)
	}
	stopped := time.Since(at)
	q := f.waitNewPrimary(t, p, at, 15*time.Second)
	// The next primary's promote has merged this app's log: now stop it.
	if err := s.Stop(ctx, 5*time.Second, p.App); err != nil {
		t.Fatalf("docker stop %s: %v", p.App, err)
	}
	if code, err := f.exitCode(ctx, p.Sidecar); err != nil || code != 0 {
		t.Errorf("%s exited with %d (%v), want 0 after SIGTERM", p.Sidecar, code, err)
	}

	demote := f.demoteOf(t, p, token, 5*time.Second)
	promote, logged := f.promoteAfter(t, q, at)
	if demote.Reason != "shutdown" || demote.ExitCode != 0 {
		t.Errorf("%s's demote: %s, want reason shutdown, exit 0", p.ID, demote)
	}
	// Order: both from the logs (the same clock, the same small delay).
	if !demote.End.Before(logged.Start) {
		t.Errorf("hand-off overlap: %s's demote ended at %s, %s's promote started at %s (sidecar logs)",
			p.ID, demote.End.Format("15:04:05.000000"), q.ID, logged.Start.Format("15:04:05.000000"))
	}
	f.report.Add("3 stop primary", "docker stop of the sidecar (demote, resign, exit)", stopped)
	f.report.Add("3 stop primary", "old demote ended -> new promote started (logs)", logged.Start.Sub(demote.End))
	f.report.Add("3 stop primary", "stop -> new primary serving (promote ended)", promote.End.Sub(at))
	t.Logf("%s stopped (token %d): demote ended %s, %s's promote (token %d) started %s later",
		p.ID, token, demote.End.Format("15:04:05.000"), q.ID, promote.Token, logged.Start.Sub(demote.End).Round(time.Microsecond))

	f.restart(t, p)
}

// --- scenario 4 -------------------------------------------------------------

// disconnectPrimary: the primary's app (and its sidecar, sharing its
// namespace) is disconnected from the compose network: it cannot reach etcd
// or its peers. Its demote ends before the new primary's promote starts;
// reconnected, it rejoins as a standby.
func (f *failover) disconnectPrimary(t *testing.T) {
	s, ctx := f.s, t.Context()
	p, token := f.waitHealthy(t, "before the disconnect", 30*time.Second)

	at := time.Now()
	if err := s.Disconnect(ctx, p); err != nil {
		t.Fatalf("docker network disconnect %s: %v", p.App, err)
	}
	connected := false
	defer func() {
		if !connected { // leave the stack whole even when failing
			_ = s.Connect(context.Background(), p)
		}
	}()
	q := f.waitNewPrimary(t, p, at, TTL+time.Second+2*time.Second+10*time.Second)
	demote := f.demoteOf(t, p, token, 5*time.Second)
	promote, logged := f.promoteAfter(t, q, at)
	if demote.ExitCode != 0 {
		t.Errorf("%s's demote failed: %s", p.ID, demote)
	}
	if !demote.End.Before(logged.Start) {
		t.Errorf("cut-off primary %s demoted at %s, after %s's promote started at %s (sidecar logs)",
			p.ID, demote.End.Format("15:04:05.000000"), q.ID, logged.Start.Format("15:04:05.000000"))
	}
	f.report.Add("4 disconnect primary", "disconnect -> cut-off primary's demote ended", demote.End.Sub(at))
	f.report.Add("4 disconnect primary", "old demote ended -> new promote started (logs)", logged.Start.Sub(demote.End))
	f.report.Add("4 disconnect primary", "disconnect -> new primary serving", promote.End.Sub(at))
	t.Logf("%s cut off (token %d): demoted (%s) at +%s; %s promoted (token %d) at +%s",
		p.ID, token, demote.Reason, demote.End.Sub(at).Round(time.Millisecond), q.ID, promote.Token, promote.End.Sub(at).Round(time.Millisecond))

	back := time.Now() // docker may attach the network before the command returns
	if err := s.Connect(ctx, p); err != nil {
		t.Fatalf("docker network connect %s: %v", p.App, err)
	}
	connected = true
	f.waitStandby(t, p, 30*time.Second)
	f.report.Add("4 disconnect primary", "reconnect -> rejoined as standby", time.Since(back))
	f.waitHealthy(t, "after the reconnect", 30*time.Second)
}

// --- scenario 5 -------------------------------------------------------------

// pausePrimary: docker pause of the primary's sidecar and app for 2 x TTL.
// Another replica is primary meanwhile. The app is thawed first and gets
// writes while it still believes it is primary under the old token: the
// fencing must refuse them. Then the sidecar is thawed: it demotes within
// DemoteTimeout (1s) of waking.
func (f *failover) pausePrimary(t *testing.T) {
	s, ctx := f.s, t.Context()
	p, token := f.waitHealthy(t, "before the pause", 30*time.Second)

	at := time.Now()
	if err := s.Pause(ctx, p.Sidecar, p.App); err != nil {
		t.Fatalf("docker pause %s %s: %v", p.Sidecar, p.App, err)
	}
	f.exempt[token] = "frozen: docker pause of " + p.ID + " (demotes when it wakes; fenced meanwhile)"
	paused := []string{p.Sidecar, p.App}
	defer func() { // leave the stack whole even when failing
		if len(paused) > 0 {
			_ = s.Unpause(context.Background(), paused...)
		}
	}()
	q := f.waitNewPrimary(t, p, at, 2*TTL)
	promote, _ := f.promoteAfter(t, q, at)
	f.report.Add("5 pause primary", "pause -> new primary serving", promote.End.Sub(at))

	// The fault: frozen for 2 x TTL in all (a fault duration, not a wait
	// for an event).
	time.Sleep(time.Until(at.Add(2 * TTL)))

	// Thaw the app alone: it is a stale primary now, and the first write
	// it gets must be refused by its peers' fencing.
	if err := s.Unpause(ctx, p.App); err != nil {
		t.Fatalf("docker unpause %s: %v", p.App, err)
	}
	paused = []string{p.Sidecar}
	role, err := s.AppState(ctx, p)
	if err != nil {
		t.Fatalf("%s's /role after unpause: %v", p.ID, err)
	}
	t.Logf("%s's app thawed: %+v (still primary with the old token: %v)", p.ID, role, role.Role == "primary" && role.Token == token)
	for i := 1; i <= 3; i++ {
		w := WriteResult{ID: fmt.Sprintf("stale-%d-%d", token, i), Replica: p.ID, Sent: time.Now()}
		code, body, err := s.Write(ctx, p, w.ID, "stale")
		w.Recv, w.Code, w.Body = time.Now(), code, body
		if err != nil {
			w.Body = err.Error()
		}
		if code == http.StatusOK {
			var e AppEntry
			_ = json.Unmarshal([]byte(body), &e)
			w.Token = e.Token
		}
		f.staleWrites = append(f.staleWrites, w)
		t.Logf("write to the stale %s (token %d): %d %s", p.ID, token, code, firstLine(w.Body))
		if code == http.StatusOK {
			t.Errorf("the stale primary %s acknowledged write %s (token %d) after %s took over with token %d",
				p.ID, w.ID, w.Token, q.ID, promote.Token)
		}
	}
	if role.Role == "primary" && role.Token == token {
		f.report.Add("5 pause primary", "writes to the thawed stale app (old token)", fmt.Sprintf("%d sent, 0 accepted (codes %s)", len(f.staleWrites), staleCodes(f.staleWrites)))
	}

	wake := time.Now()
	if err := s.Unpause(ctx, p.Sidecar); err != nil {
		t.Fatalf("docker unpause %s: %v", p.Sidecar, err)
	}
	paused = nil
	demote := f.demoteOf(t, p, token, 10*time.Second)
	if demote.ExitCode != 0 {
		t.Errorf("%s's demote failed: %s", p.ID, demote)
	}
	took := demote.End.Sub(wake)
	f.report.Add("5 pause primary", "sidecar unpause -> stale demote ended", took)
	t.Logf("%s woke: demote (%s) started +%s, ended +%s after the unpause", p.ID, demote.Reason,
		demote.Start.Sub(wake).Round(time.Millisecond), took.Round(time.Millisecond))
	if took > DemoteTimeout {
		t.Errorf("the stale %s demoted %s after waking, want within %s", p.ID, took, DemoteTimeout)
	}
	if !promote.End.Before(wake) {
		t.Errorf("%s was not primary before %s woke", q.ID, p.ID)
	}
	// After its demote the stale app is a standby.
	if role, err := s.AppState(ctx, p); err != nil || role.Role != "standby" {
		t.Errorf("%s's app after its demote: %+v %v, want standby", p.ID, role, err)
	}
	f.waitStandby(t, p, 30*time.Second)
	f.waitHealthy(t, "after the pause", 30*time.Second)
}

func staleCodes(ws []WriteResult) string {
	var c []string
	for _, w := range ws {
		c = append(c, fmt.Sprint(w.Code))
	}
	return strings.Join(c, ",")
}

// --- scenario 6 -------------------------------------------------------------

// etcdLoss: one etcd member killed (a follower: quorum and raft leader
// stay): no change of primary for 2 x TTL. A second member killed (the
// other follower: the last member is an isolated raft leader; quorum
// lost): the primary demotes before its lease can expire, and nobody is
// primary. The members started again: one primary again. Then the raft
// leader alone is killed: see etcdLeaderLoss.
func (f *failover) etcdLoss(t *testing.T) {
	s, ctx := f.s, t.Context()
	p, token := f.waitHealthy(t, "before the etcd faults", 30*time.Second)

	leader, err := f.etcdLeader(ctx)
	if err != nil {
		t.Fatalf("finding etcd's leader: %v", err)
	}
	var followers []string
	for _, m := range s.Etcd {
		if m != leader {
			followers = append(followers, m)
		}
	}
	killed := []string{}
	defer func() { // leave the stack whole even when failing
		if len(killed) > 0 {
			_ = s.Start(context.Background(), killed...)
		}
	}()

	at1 := time.Now()
	if err := s.Kill(ctx, "SIGKILL", followers[0]); err != nil {
		t.Fatalf("docker kill %s: %v", followers[0], err)
	}
	killed = append(killed, followers[0])
	// Observation window: 2 x TTL with one member down (a fault duration).
	time.Sleep(2 * TTL)
	window := f.mon.Between(at1, time.Now())
	if bad := f.primaryChanged(t, p, at1, window); len(bad) > 0 {
		t.Fatalf("etcd member %s (a follower) killed: the primary %s changed within 2 x TTL:\n  %s", followers[0], p.ID, strings.Join(bad, "\n  "))
	}
	f.report.Add("6 etcd member lost", fmt.Sprintf("primary unchanged for 2 x TTL (%s, a follower, killed)", followers[0]), fmt.Sprintf("yes (%d samples)", len(window)))

	victim := followers[1]
	at2 := time.Now()
	if err := s.Kill(ctx, "SIGKILL", victim); err != nil {
		t.Fatalf("docker kill %s: %v", victim, err)
	}
	killed = append(killed, victim)
	// Until it demotes, read the primary's lease from its /status: the
	// server cannot expire the lease before sent + TTL, sent being when the
	// last successful renewal was sent; the sidecar reports its safe
	// deadline, sent + TTL - StepDownLead. (The isolated raft leader keeps
	// renewing leases until it notices, an election timeout later, that it
	// has lost quorum.)
	var leaseEnd time.Time
	WaitFor(t, TTL+5*time.Second, p.ID+" to step down without quorum", func(ctx context.Context) (bool, string) {
		asked := time.Now() // before the sidecar's snapshot: an early (strict) estimate
		st, err := s.Status(ctx, p)
		if err != nil {
			return false, err.Error()
		}
		if st.Phase == "primary" && st.Lease != nil {
			leaseEnd = asked.Add(time.Duration(st.Lease.SecondsToSafeDeadline*float64(time.Second)) + StepDownLead)
		}
		return st.Role == "standby", fmt.Sprintf("%s phase %s, lease %+v", p.ID, st.Phase, st.Lease)
	})
	demote := f.demoteOf(t, p, token, TTL+5*time.Second)
	took := demote.End.Sub(at2)
	f.report.Add("6 etcd quorum lost", fmt.Sprintf("2nd member (%s) killed -> primary's demote ended", victim), took)
	t.Logf("quorum lost (%s, then %s killed; %s isolated): %s demoted (%s) %s later, %s before its lease could expire (%s)",
		followers[0], victim, leader, p.ID, demote.Reason, took.Round(time.Millisecond),
		leaseEnd.Sub(demote.End).Round(time.Millisecond), leaseEnd.Format("15:04:05.000"))
	if demote.ExitCode != 0 {
		t.Errorf("%s's demote failed: %s", p.ID, demote)
	}
	if leaseEnd.IsZero() {
		t.Errorf("%s's /status never showed its lease while primary", p.ID)
	} else {
		f.report.Add("6 etcd quorum lost", "demote ended -> earliest server-side lease expiry", leaseEnd.Sub(demote.End))
		if !demote.End.Before(leaseEnd) {
			t.Errorf("%s's demote ended at %s, not before its lease could expire at %s (last renewal + TTL)",
				p.ID, demote.End.Format("15:04:05.000"), leaseEnd.Format("15:04:05.000"))
		}
	}
	// Nobody primary: observed until 2 x TTL after the quorum loss (a fault
	// duration), from the demote's end.
	time.Sleep(time.Until(at2.Add(2 * TTL)))
	for _, smp := range f.mon.Between(demote.End, time.Now()) {
		if len(smp.Primaries()) > 0 {
			t.Errorf("without quorum, a sidecar answered /primary 200: %s", smp)
			break
		}
	}

	restored := time.Now()
	if err := s.Start(ctx, killed...); err != nil {
		t.Fatalf("docker start %v: %v", killed, err)
	}
	killed = nil
	q := f.waitNewPrimary(t, Replica{}, restored, 30*time.Second)
	promote, _ := f.promoteAfter(t, q, restored)
	// etcd's new raft leader extends every lease by its TTL: the old keys
	// (leases the sidecars could not revoke without quorum) hold the
	// election until then.
	f.report.Add("6 etcd quorum lost", "members started -> a primary serving", promote.End.Sub(restored))
	t.Logf("members back: %s primary (token %d) %s later", q.ID, promote.Token, promote.End.Sub(restored).Round(time.Millisecond))
	f.waitHealthy(t, "after the etcd faults", 30*time.Second)

	f.etcdLeaderLoss(t)
}

// etcdLeaderLoss kills etcd's raft leader alone. Not asserted: no change of
// primary. With TTL 4s and a 1s demote timeout the primary steps down 2.5s
// after its last successful renewal was sent (up to 1s before the kill),
// and etcd needs its election timeout (1s, randomized up to 2s) and a vote
// to elect a new leader: the primary may hand off once. Asserted: safety
// (never two primaries, tenures in order without overlap) and one primary
// again. Reported: whether the primary changed.
func (f *failover) etcdLeaderLoss(t *testing.T) {
	s, ctx := f.s, t.Context()
	p, _ := f.waitHealthy(t, "before killing etcd's leader", 30*time.Second)
	leader, err := f.etcdLeader(ctx)
	if err != nil {
		t.Fatalf("finding etcd's leader: %v", err)
	}
	at := time.Now()
	if err := s.Kill(ctx, "SIGKILL", leader); err != nil {
		t.Fatalf("docker kill %s: %v", leader, err)
	}
	started := false
	defer func() {
		if !started {
			_ = s.Start(context.Background(), leader)
		}
	}()
	// Observation window: 2 x TTL with the leader down (a fault duration).
	time.Sleep(2 * TTL)
	to := time.Now()
	window := f.mon.Between(at, to)
	if bad := TwoPrimaries(window); len(bad) > 0 {
		t.Errorf("two primaries after etcd's leader %s was killed: %s", leader, bad[0])
	}
	var tenures []timeline.Tenure
	for _, tn := range PTenures(f.runs(t)) {
		if tn.Start.After(at) || tn.End.After(at) {
			tenures = append(tenures, tn)
		}
	}
	if err := CheckPTenures(tenures, nil); err != nil {
		t.Errorf("etcd leader %s killed: %v", leader, err)
	}
	changed := f.primaryChanged(t, p, at, window)
	verdict := "no"
	if len(changed) > 0 {
		verdict = fmt.Sprintf("yes: %d tenures in the window, in order, no overlap", len(tenures))
		t.Logf("etcd's leader %s killed: %s's tenure ended (tolerated, see etcdLeaderLoss):\n  %s", leader, p.ID, strings.Join(changed[:min(5, len(changed))], "\n  "))
	}
	f.report.Add("6 etcd leader lost", fmt.Sprintf("primary changed within 2 x TTL (%s, raft leader, killed)", leader), verdict)
	if err := s.Start(ctx, leader); err != nil {
		t.Fatalf("docker start %s: %v", leader, err)
	}
	started = true
	f.waitHealthy(t, "after etcd's leader came back", 30*time.Second)
}

// primaryChanged lists what shows that p stopped being the only primary
// after at: samples with another primary or p answering 503, hook runs.
func (f *failover) primaryChanged(t *testing.T, p Replica, at time.Time, window []Sample) []string {
	t.Helper()
	var bad []string
	for _, smp := range window {
		prim := smp.Primaries()
		if (len(prim) > 0 && !slices.Equal(prim, []int{p.N - 1})) || smp.Codes[p.N-1] == http.StatusServiceUnavailable {
			bad = append(bad, smp.String())
		}
	}
	for _, r := range f.runs(t) {
		if r.Start.After(at) {
			bad = append(bad, "hook run: "+r.String())
		}
	}
	return bad
}

// etcdLeader asks the members' maintenance status (gRPC gateway) for the
// raft leader's member id and maps it to a service.
// Members that do not answer (killed) are skipped.
func (f *failover) etcdLeader(ctx context.Context) (string, error) {
	type status struct {
		Header struct {
			MemberID string `json:"member_id"`
		} `json:"header"`
		Leader string `json:"leader"`
	}
	ports := map[string]string{"etcd1": "12379", "etcd2": "22379", "etcd3": "32379"}
	var leader string
	byID := map[string]string{}
	for _, m := range f.s.Etcd {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:"+ports[m]+"/v3/maintenance/status", strings.NewReader("{}"))
		if err != nil {
			return "", err
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			continue // killed
		}
		var st status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return "", fmt.Errorf("%s status: %w", m, err)
		}
		byID[st.Header.MemberID] = m
		if st.Leader != "" && st.Leader != "0" {
			leader = st.Leader
		}
	}
	if m, ok := byID[leader]; ok {
		return m, nil
	}
	return "", fmt.Errorf("leader %q is none of the members %v", leader, byID)
}

// --- scenario 7 -------------------------------------------------------------

// rollingRestart stops and starts each replica in turn (sidecar, then app;
// the app only once a new primary serves if it was the primary), waiting
// for it to rejoin as a standby: never two primaries, and the share of the
// time with one.
func (f *failover) rollingRestart(t *testing.T) {
	s, ctx := f.s, t.Context()
	f.waitHealthy(t, "before the rolling restart", 30*time.Second)
	from := time.Now()
	handoffs := 0
	for _, r := range s.Replicas {
		wasPrimary, _ := s.IsPrimary(ctx, r)
		at := time.Now()
		if err := s.Stop(ctx, 10*time.Second, r.Sidecar); err != nil {
			t.Fatalf("docker stop %s: %v", r.Sidecar, err)
		}
		if wasPrimary {
			handoffs++
			q := f.waitNewPrimary(t, r, at, 15*time.Second)
			promote, _ := f.promoteAfter(t, q, at)
			f.report.Add("7 rolling restart", fmt.Sprintf("stop of primary %s -> %s serving", r.ID, q.ID), promote.End.Sub(at))
		}
		if err := s.Stop(ctx, 5*time.Second, r.App); err != nil {
			t.Fatalf("docker stop %s: %v", r.App, err)
		}
		f.restart(t, r)
	}
	to := time.Now()
	samples := f.mon.Between(from, to)
	if bad := TwoPrimaries(samples); len(bad) > 0 {
		t.Errorf("two primaries during the rolling restart, %d samples, first: %s", len(bad), bad[0])
	}
	var tenures []timeline.Tenure
	for _, tn := range PTenures(f.runs(t)) {
		if tn.Start.After(from) || tn.End.After(from) {
			tenures = append(tenures, tn)
		}
	}
	if err := CheckPTenures(tenures, nil); err != nil {
		t.Errorf("rolling restart: %v", err)
	}
	frac := PrimaryFraction(samples)
	f.report.Add("7 rolling restart", "duration (3 replicas)", to.Sub(from))
	f.report.Add("7 rolling restart", "time with exactly one primary", fmt.Sprintf("%.1f%% (%d samples, %d hand-offs)", 100*frac, len(samples), handoffs))
	f.report.Add("7 rolling restart", "longest stretch without a primary", NoPrimaryGap(samples))
	t.Logf("rolling restart: %s, one primary %.1f%% of the time, %d hand-offs, %d tenures", to.Sub(from).Round(time.Millisecond), 100*frac, handoffs, len(tenures))
}

// --- 8: the writer and the whole run ----------------------------------------

// checkWrites stops the writer and checks what it got through all of the
// above: every acknowledged write carries the token of the tenure that was
// primary when it was acknowledged, the final primary's log holds every
// acknowledged write with that token, tokens never go down along
// acknowledgement order; and, over the whole run, never two primaries, and
// tenures in token order without overlap (except the crashed and the frozen
// ones).
func (f *failover) checkWrites(t *testing.T) {
	s, ctx := f.s, t.Context()
	f.stopWriter()
	f.writer.Wait()
	results := f.writer.Results()
	acked := Acked(results)
	f.report.Add("8 writer", "writes sent (all scenarios)", fmt.Sprintf("%d (%s)", len(results), WriteCounts(results)))
	if len(acked) < 100 {
		t.Errorf("only %d writes acknowledged (%s): the writer did not get through", len(acked), WriteCounts(results))
	}

	runs := f.runs(t)
	tenures := PTenures(runs)
	if err := CheckPTenures(tenures, f.exempt); err != nil {
		t.Errorf("whole run: %v\nexempt: %v\nhook runs:\n%s", err, f.exempt, FormatRuns(runs))
	}
	if bad := CheckAckTokens(acked, tenures); len(bad) > 0 {
		t.Errorf("%d writes acknowledged under a stale fencing token, e.g.:\n  %s", len(bad), strings.Join(bad[:min(10, len(bad))], "\n  "))
	}
	for _, w := range f.staleWrites {
		if w.Code == http.StatusOK {
			t.Errorf("stale write %s acknowledged by %s with token %d", w.ID, w.Replica, w.Token)
		}
	}
	if bad := TwoPrimaries(f.mon.All()); len(bad) > 0 {
		t.Errorf("two sidecars answered /primary 200 at once in %d samples, first: %s", len(bad), bad[0])
	}

	p, _ := f.waitHealthy(t, "for the final log", 30*time.Second)
	entries, err := s.AppLog(ctx, p)
	if err != nil {
		t.Fatalf("%s's /log: %v", p.ID, err)
	}
	inLog := map[string]AppEntry{}
	for i, e := range entries {
		inLog[e.ID] = e
		if i > 0 && e.Token < entries[i-1].Token {
			t.Errorf("final log of %s: token goes down at entry %d: %s %d after %s %d", p.ID, i, e.ID, e.Token, entries[i-1].ID, entries[i-1].Token)
		}
	}
	var lost, changed []string
	var prevToken int64
	for _, w := range acked {
		e, ok := inLog[w.ID]
		switch {
		case !ok:
			lost = append(lost, fmt.Sprintf("%s (token %d, by %s at %s)", w.ID, w.Token, w.Replica, w.Recv.Format("15:04:05.000")))
			continue
		case e.Token != w.Token:
			changed = append(changed, fmt.Sprintf("%s acknowledged with token %d, in the log with %d", w.ID, w.Token, e.Token))
		}
		if e.Token < prevToken {
			t.Errorf("final log: %s (token %d) was acknowledged after a write with token %d", w.ID, e.Token, prevToken)
		}
		prevToken = max(prevToken, e.Token)
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes missing from the final primary %s's log, e.g.:\n  %s",
			len(lost), len(acked), p.ID, strings.Join(lost[:min(10, len(lost))], "\n  "))
	}
	if len(changed) > 0 {
		t.Errorf("%d acknowledged writes changed token, e.g.:\n  %s", len(changed), strings.Join(changed[:min(10, len(changed))], "\n  "))
	}
	f.report.Add("8 writer", "acknowledged writes in the final log", fmt.Sprintf("%d of %d (final log %d entries, %d tenures)", len(acked)-len(lost), len(acked), len(entries), len(tenures)))
	f.report.Add("8 writer", "acknowledged under a stale token", len(CheckAckTokens(acked, tenures)))
	f.report.Add("all", "hook stamps: sidecar log vs /status, max difference", f.maxSkew)
	all := f.mon.All()
	if len(all) > 1 {
		f.report.Add("all", "time with exactly one primary (whole run)", fmt.Sprintf("%.1f%% (%d samples)", 100*PrimaryFraction(all), len(all)))
	}
}

// --- helpers ----------------------------------------------------------------

// waitHealthy waits until exactly one primary has been stable for TTL/2,
// the other two are healthy standbys, and the primary's app is primary
// with the sidecar's fencing token. It returns the primary and its token.
func (f *failover) waitHealthy(t *testing.T, what string, timeout time.Duration) (Replica, int64) {
	t.Helper()
	s := f.s
	p := s.WaitForOnePrimary(t, timeout, TTL/2)
	var token int64
	WaitFor(t, timeout, "a healthy stack "+what+" (primary "+p.ID+")", func(ctx context.Context) (bool, string) {
		st, err := s.Status(ctx, p)
		if err != nil {
			return false, err.Error()
		}
		if st.Role != "primary" {
			return false, fmt.Sprintf("%s is %s now", p.ID, st.Role)
		}
		token = st.FencingToken
		role, err := s.AppState(ctx, p)
		if err != nil {
			return false, err.Error()
		}
		if role.Role != "primary" || role.Token != token {
			return false, fmt.Sprintf("%s's app %+v, sidecar token %d", p.ID, role, token)
		}
		for _, r := range s.Replicas {
			if r == p {
				continue
			}
			if ok, observed := f.rejoined(ctx, r); !ok {
				return false, observed
			}
		}
		return true, ""
	})
	return p, token
}

// waitNewPrimary waits until the Monitor shows exactly one primary other
// than old (any, when old is the zero Replica) in a sample sent after
// since.
func (f *failover) waitNewPrimary(t *testing.T, old Replica, since time.Time, timeout time.Duration) Replica {
	t.Helper()
	var q Replica
	WaitFor(t, timeout, "a new primary (not "+old.ID+")", func(context.Context) (bool, string) {
		smp := f.mon.Latest()
		prim := smp.Primaries()
		if smp.At.Before(since) || len(prim) != 1 || f.s.Replicas[prim[0]].ID == old.ID {
			return false, smp.String()
		}
		q = f.s.Replicas[prim[0]]
		return true, ""
	})
	return q
}

// waitStandby waits until r has rejoined as a standby (see rejoined).
func (f *failover) waitStandby(t *testing.T, r Replica, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, r.ID+" to rejoin as a standby", func(ctx context.Context) (bool, string) {
		return f.rejoined(ctx, r)
	})
}

// rejoined: r's sidecar answers /standby 200 (standby, campaigning,
// healthy) and its /status shows it in the election: etcd reachable, a
// lease held, a leader known. /standby alone is 200 as soon as the sidecar
// looks for a lease, before it has one (e.g. still cut off).
func (f *failover) rejoined(ctx context.Context, r Replica) (bool, string) {
	code, err := get(ctx, r.APIURL+"/standby")
	if err != nil {
		return false, fmt.Sprintf("%s /standby: %v", r.ID, err)
	}
	if code != http.StatusOK {
		return false, fmt.Sprintf("%s /standby %d", r.ID, code)
	}
	st, err := f.s.Status(ctx, r)
	if err != nil {
		return false, fmt.Sprintf("%s /status: %v", r.ID, err)
	}
	if st.Role != "standby" || !st.Etcd.Reachable || st.Lease == nil || st.Leader == nil || st.Leader.ID == r.ID {
		return false, fmt.Sprintf("%s: role %s, etcd reachable %v, lease %+v, leader %+v", r.ID, st.Role, st.Etcd.Reachable, st.Lease, st.Leader)
	}
	return true, ""
}

// restart starts r's app and sidecar again and waits until it has rejoined
// as a standby and the stack is healthy.
func (f *failover) restart(t *testing.T, r Replica) {
	t.Helper()
	at := time.Now()
	if err := f.s.StartReplica(t.Context(), r); err != nil {
		t.Fatalf("starting %s again: %v", r.ID, err)
	}
	f.waitStandby(t, r, 30*time.Second)
	t.Logf("%s started again and rejoined as a standby in %s", r.ID, time.Since(at).Round(time.Millisecond))
	f.waitHealthy(t, "after restarting "+r.ID, 30*time.Second)
}

func (f *failover) runs(t *testing.T) []HookRun {
	t.Helper()
	runs, err := f.s.HookRuns(t.Context())
	if err != nil {
		t.Fatalf("reading the sidecars' logs: %v", err)
	}
	return runs
}

// promoteAfter returns r's first promote run that started after since and
// ended (it is serving: the Monitor saw it primary): as logged, and with
// the precise stamps of its /status when they are for the same run (for
// durations; compare with another log's stamps the logged one).
func (f *failover) promoteAfter(t *testing.T, r Replica, since time.Time) (precise, logged HookRun) {
	t.Helper()
	var found HookRun
	WaitFor(t, 5*time.Second, r.ID+"'s promote in its log", func(ctx context.Context) (bool, string) {
		runs, err := f.s.HookRuns(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, run := range runs {
			if run.ID == r.ID && run.Hook == "promote" && run.Start.After(since) && !run.End.IsZero() {
				found = run
				return true, ""
			}
		}
		return false, "hook runs:\n" + FormatRuns(runs)
	})
	// The sidecar's own stamps (its /status hook result: Go's clock in the
	// process) while this is its latest promote. The log's stamps are the
	// docker daemon's, taken a few ms later when it reads the line.
	precise = found
	if st, err := f.s.Status(t.Context(), r); err == nil {
		if h, ok := st.Hooks["promote"]; ok && h.Reason == found.Reason && absDur(h.Start.Sub(found.Start)) < time.Second {
			f.maxSkew = max(f.maxSkew, absDur(h.Start.Sub(found.Start)), absDur(h.End.Sub(found.End)))
			precise.Start, precise.End = h.Start, h.End
		}
	}
	return precise, found
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// demoteOf waits for r's ended, successful demote of tenure token (or its
// last attempt, when none succeeds in time).
func (f *failover) demoteOf(t *testing.T, r Replica, token int64, timeout time.Duration) HookRun {
	t.Helper()
	var found HookRun
	WaitFor(t, timeout, fmt.Sprintf("%s's demote of tenure %d in its log", r.ID, token), func(ctx context.Context) (bool, string) {
		runs, err := f.s.HookRuns(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, run := range runs {
			if run.ID == r.ID && run.Hook == "demote" && run.Token == token && !run.End.IsZero() {
				found = run
				if run.ExitCode == 0 {
					return true, ""
				}
			}
		}
		return false, "hook runs:\n" + FormatRuns(runs)
	})
	return found
}

func (f *failover) exitCode(ctx context.Context, service string) (int, error) {
	out, err := run(ctx, CommandTimeout, "docker", "inspect", "-f", "{{.State.ExitCode}}", f.s.ID(service))
	if err != nil {
		return -1, err
	}
	var code int
	_, err = fmt.Sscan(firstLine(out), &code)
	return code, err
}

// diagnose logs, when t failed, what the compose logs (DumpLogsOnFailure)
// do not show: the containers' states, the precise hook timeline, the
// latest /primary samples and the writer's outcomes.
func (f *failover) diagnose(t *testing.T) {
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*CommandTimeout)
	defer cancel()
	if out, err := run(ctx, CommandTimeout, "docker", "ps", "-a", "--filter", "label=com.docker.compose.project="+f.s.project,
		"--format", "table {{.Names}}\t{{.Status}}"); err == nil {
		t.Logf("docker ps -a:\n%s", out)
	}
	if runs, err := f.s.HookRuns(ctx); err == nil {
		t.Logf("hook runs (from the sidecars' logs):\n%s", FormatRuns(runs))
	}
	all := f.mon.All()
	var b strings.Builder
	for _, smp := range all[max(0, len(all)-40):] {
		fmt.Fprintf(&b, "  %s\n", smp)
	}
	t.Logf("last /primary samples:\n%s", b.String())
	if f.writer != nil {
		t.Logf("writer: %s", WriteCounts(f.writer.Results()))
	}
	if len(f.report.rows) > 0 {
		t.Logf("figures so far:\n%s", f.report.Table())
	}
	_ = os.Stdout.Sync()
}
