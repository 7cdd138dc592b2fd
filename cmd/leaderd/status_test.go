package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/role"
)

// candidate is a key written as a campaigning replica would write it.
type candidate struct {
	id      string
	lease   clientv3.LeaseID
	created int64 // the key's create revision: the fencing token if it leads
}

// putCandidate writes a candidate key on a new lease with the JSON value
// a replica publishes.
func putCandidate(t *testing.T, c *clientv3.Client, prefix, electionName, id string) candidate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	lease, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	val, err := json.Marshal(map[string]any{"id": id, "addr": id + ":8008", "since": time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	key := election.NewStore(c, prefix, electionName).CandidateKey(lease.ID)
	resp, err := c.Put(ctx, key, string(val), clientv3.WithLease(lease.ID))
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return candidate{id: id, lease: lease.ID, created: resp.Header.Revision}
}

// jsonStatus mirrors the documented --json output.
type jsonStatus struct {
	Election string `json:"election"`
	Leader   *struct {
		ID           string `json:"id"`
		FencingToken int64  `json:"fencing_token"`
	} `json:"leader"`
	Candidates []struct {
		ID             string    `json:"id"`
		Addr           string    `json:"addr"`
		Since          time.Time `json:"since"`
		LeaseID        string    `json:"lease_id"`
		CreateRevision int64     `json:"create_revision"`
		Priority       int       `json:"priority"`
	} `json:"candidates"`
	Members      []jsonMember `json:"members"`
	Availability float64      `json:"availability"`
	Registered   int          `json:"registered"`
	Paused       bool         `json:"paused"`
	Switchover   *struct {
		From         string    `json:"from"`
		FencingToken int64     `json:"fencing_token"`
		To           string    `json:"to"`
		Requested    time.Time `json:"requested"`
		At           time.Time `json:"at"`
		Expires      time.Time `json:"expires"`
		State        string    `json:"state"`
	} `json:"switchover"`
	Healthy int `json:"healthy"`
}

type jsonMember struct {
	ID               string    `json:"id"`
	Role             string    `json:"role"`
	Phase            string    `json:"phase"`
	Healthy          bool      `json:"healthy"`
	Since            time.Time `json:"since"`
	Version          string    `json:"version"`
	Addr             string    `json:"addr"`
	LeaseID          string    `json:"lease_id"`
	LeaseSecondsLeft int64     `json:"lease_seconds_left"`
	FencingToken     int64     `json:"fencing_token"`
	Priority         int       `json:"priority"`
}

// invokeBounded runs leaderd in the background and fails the test if it
// does not return within limit.
func invokeBounded(t *testing.T, limit time.Duration, env envMap, args ...string) result {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- invoke(env, args...) }()
	select {
	case r := <-done:
		return r
	case <-time.After(limit):
		t.Fatalf("leaderd %v did not return within %s", args, limit)
		return result{}
	}
}

func TestStatus(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())

	first := putCandidate(t, client, "/leaderd", "web", "app-1")
	// Noise that must not show: another election, one whose name extends
	// "web", and another prefix.
	putCandidate(t, client, "/leaderd", "web2", "other-1")
	putCandidate(t, client, "/other", "web", "other-2")
	second := putCandidate(t, client, "/leaderd", "web", "app-2")

	t.Run("json", func(t *testing.T) {
		got, _ := statusJSON(t, srv.Endpoint(), "web")
		if got.Election != "web" {
			t.Errorf("election = %q, want web", got.Election)
		}
		if got.Leader == nil || got.Leader.ID != "app-1" || got.Leader.FencingToken != first.created {
			t.Errorf("leader = %+v, want app-1 with fencing token %d", got.Leader, first.created)
		}
		if len(got.Candidates) != 2 {
			t.Fatalf("candidates = %+v, want app-1 and app-2", got.Candidates)
		}
		for i, want := range []candidate{first, second} {
			c := got.Candidates[i]
			if c.ID != want.id || c.Addr != want.id+":8008" || c.CreateRevision != want.created ||
				c.LeaseID != strconv.FormatInt(int64(want.lease), 16) || c.Since.IsZero() {
				t.Errorf("candidates[%d] = %+v, want id %s, lease %x, create revision %d", i, c, want.id, int64(want.lease), want.created)
			}
		}
	})

	t.Run("text", func(t *testing.T) {
		r := invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", srv.Endpoint(), "--election", "web")
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
		}
		out := r.stdout
		for _, want := range []string{
			"app-1", "app-2", strconv.FormatInt(first.created, 10),
			fmt.Sprintf("%x", int64(first.lease)), fmt.Sprintf("%x", int64(second.lease)),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(out, "leader:") || !strings.Contains(out, "fencing token:") {
			t.Errorf("output lacks the leader lines:\n%s", out)
		}
		pos1, pos2 := regexp.MustCompile(`(?m)^1\s+app-1\s`).FindStringIndex(out), regexp.MustCompile(`(?m)^2\s+app-2\s`).FindStringIndex(out)
		if pos1 == nil || pos2 == nil || pos2[0] < pos1[0] {
			t.Errorf("want app-1 at position 1 before app-2 at position 2:\n%s", out)
		}
		if strings.Contains(out, "other-") {
			t.Errorf("output shows another election's candidates:\n%s", out)
		}
	})

	t.Run("env twins", func(t *testing.T) {
		env := envMap{"LEADERD_ENDPOINTS": srv.Endpoint(), "LEADERD_ELECTION": "web", "LEADERD_PREFIX": "/other"}
		r := invokeBounded(t, 20*time.Second, env, "status", "--json")
		if r.code != exitOK {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		var got jsonStatus
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatal(err)
		}
		if got.Leader == nil || got.Leader.ID != "other-2" {
			t.Errorf("leader = %+v, want other-2 under prefix /other", got.Leader)
		}
	})

	t.Run("no leader", func(t *testing.T) {
		r := invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", srv.Endpoint(), "--election", "empty", "--json")
		if r.code != exitOK {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
			t.Fatal(err)
		}
		if string(raw["leader"]) != "null" {
			t.Errorf(`"leader" = %s, want null`, raw["leader"])
		}
		if string(raw["candidates"]) != "[]" {
			t.Errorf(`"candidates" = %s, want []`, raw["candidates"])
		}

		r = invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", srv.Endpoint(), "--election", "empty")
		if r.code != exitOK || !strings.Contains(r.stdout, "no leader") {
			t.Errorf("exit %d, stdout %q; want 0 and no leader", r.code, r.stdout)
		}
	})
}

func TestStatusUnreachable(t *testing.T) {
	t.Parallel() // it waits out timeouts; nothing shared
	// A loopback port where nothing listens: take a free one and close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close()

	start := time.Now()
	// The dial and call deadlines add up to 8s; 20s leaves room for a
	// loaded machine and still bounds the test.
	r := invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", endpoint, "--election", "web")
	if r.code != exitError {
		t.Errorf("exit %d, want %d", r.code, exitError)
	}
	line := oneLineErr(t, r)
	if want := "leaderd status: etcd unreachable at " + endpoint + ": "; !strings.HasPrefix(line, want) {
		t.Errorf("stderr = %q, want it to start with %q", line, want)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
	t.Logf("gave up after %s: %s", time.Since(start).Round(time.Millisecond), line)
}

func TestStatusConfigBadInput(t *testing.T) {
	tests := []badInput{
		{"unknown flag", []string{"--election", "web", "--ttl", "5s"}, nil, []string{"flag provided but not defined: -ttl"}},
		{"missing election", nil, nil, []string{"--election", "required"}},
		{"bad election", []string{"--election", "a b"}, nil, []string{"--election"}},
		{"bad endpoint", []string{"--election", "web", "--endpoints", "etcd:2379"}, nil, []string{"--endpoints"}},
		{"bad prefix in env", []string{"--election", "web"}, envMap{"LEADERD_PREFIX": "leaderd/"}, []string{"--prefix", "LEADERD_PREFIX"}},
		{"missing cacert", []string{"--election", "web", "--cacert", "/does/not/exist"}, nil, []string{"--cacert"}},
		{"unreadable password-file", []string{"--election", "web", "--user", "u", "--password-file", "/does/not/exist"}, nil, []string{"--password-file"}},
		{"bad json value", []string{"--election", "web", "--json=maybe"}, nil, []string{"-json"}},
		{"stray argument", []string{"--election", "web", "now"}, nil, []string{"unexpected argument", `"now"`}},
	}
	checkBadInput(t, "status", tests)
}

func TestStatusHelp(t *testing.T) {
	r := invoke(nil, "status", "--help")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
	}
	for _, name := range []string{"endpoints", "election", "prefix", "cacert", "cert", "key", "user", "password-file"} {
		if !strings.Contains(r.stdout, "--"+name+" ") || !strings.Contains(r.stdout, "$"+envName(name)) {
			t.Errorf("status help lacks --%s or $%s", name, envName(name))
		}
	}
	if !strings.Contains(r.stdout, "--json") {
		t.Errorf("status help lacks --json")
	}
}

// publishMember puts a member record on a new 60s lease, as a replica
// publishes itself, and returns the lease.
func publishMember(t *testing.T, c *clientv3.Client, prefix, electionName string, m election.Member) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	lease, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if err := election.NewStore(c, prefix, electionName).PublishMember(ctx, lease.ID, m); err != nil {
		t.Fatal(err)
	}
	return lease.ID
}

func member(id string, r role.Role, healthy bool) election.Member {
	return election.Member{
		ID: id, Role: r, Phase: role.Phase(r), Healthy: healthy,
		Since:   time.Now().UTC().Truncate(time.Second),
		Version: "v9.9.9", Addr: id + ":8008", Priority: election.DefaultPriority,
	}
}

func TestStatusMembers(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())

	leader := putCandidate(t, client, "/leaderd", "db", "app-1")
	putCandidate(t, client, "/leaderd", "db", "app-2")
	lease1 := publishMember(t, client, "/leaderd", "db", member("app-1", "primary", true))
	app2 := member("app-2", "standby", false)
	app2.Priority = 150
	lease2 := publishMember(t, client, "/leaderd", "db", app2)
	// Noise: a member of an election whose name extends "db".
	publishMember(t, client, "/leaderd", "db2", member("other-1", "standby", true))

	t.Run("text", func(t *testing.T) {
		r := invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", srv.Endpoint(), "--election", "db")
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
		}
		out := r.stdout
		for _, re := range []string{
			`(?m)^ID\s+ROLE\s+HEALTHY\s+PRIO\s+LEASE-LEFT\s+TOKEN\s+ADDR$`,
			fmt.Sprintf(`(?m)^app-1\s+primary\s+yes\s+100\s+\d+s\s+%d\s+app-1:8008$`, leader.created),
			`(?m)^app-2\s+standby\s+no\s+150\s+\d+s\s+-\s+app-2:8008$`,
			// Candidate values without a priority (older leaderd) read as 100.
			`(?m)^1\s+app-1\s+100\s+[0-9a-f]+\s`,
			`(?m)^availability: 1/2 healthy \(0\.50\)$`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("output does not match %s:\n%s", re, out)
			}
		}
		if strings.Contains(out, "other-1") {
			t.Errorf("output shows another election's member:\n%s", out)
		}
		// The candidates table is still there, before the members.
		if i, j := strings.Index(out, "POS"), strings.Index(out, "LEASE-LEFT"); i < 0 || j < i {
			t.Errorf("want the candidates table before the members table:\n%s", out)
		}
	})

	t.Run("json", func(t *testing.T) {
		got, r := statusJSON(t, srv.Endpoint(), "db")
		if got.Availability != 0.5 || got.Registered != 2 || got.Healthy != 1 {
			t.Errorf("availability %v, registered %d, healthy %d; want 0.5, 2, 1", got.Availability, got.Registered, got.Healthy)
		}
		if got.Leader == nil || got.Leader.ID != "app-1" || got.Leader.FencingToken != leader.created {
			t.Errorf("leader = %+v, want app-1 with token %d", got.Leader, leader.created)
		}
		if len(got.Members) != 2 {
			t.Fatalf("members = %+v, want app-1 and app-2", got.Members)
		}
		for i, want := range []struct {
			id, role string
			healthy  bool
			lease    clientv3.LeaseID
			token    int64
			priority int
		}{
			{"app-1", "primary", true, lease1, leader.created, 100},
			{"app-2", "standby", false, lease2, 0, 150},
		} {
			m := got.Members[i]
			if m.Priority != want.priority {
				t.Errorf("members[%d] priority %d, want %d", i, m.Priority, want.priority)
			}
			if m.ID != want.id || m.Role != want.role || m.Phase != want.role || m.Healthy != want.healthy ||
				m.Version != "v9.9.9" || m.Addr != want.id+":8008" || m.Since.IsZero() ||
				m.LeaseID != strconv.FormatInt(int64(want.lease), 16) ||
				m.LeaseSecondsLeft <= 0 || m.LeaseSecondsLeft > 60 || m.FencingToken != want.token {
				t.Errorf("members[%d] = %+v, want %s %s healthy=%v lease %x, 0 < lease left <= 60, token %d",
					i, m, want.id, want.role, want.healthy, int64(want.lease), want.token)
			}
		}
		// A candidate value without a priority (older leaderd) reads as 100.
		if len(got.Candidates) != 2 || got.Candidates[0].Priority != election.DefaultPriority {
			t.Errorf("candidates = %+v, want two with priority %d", got.Candidates, election.DefaultPriority)
		}
		// Only the leader's record carries a fencing token.
		var raw struct {
			Members []map[string]json.RawMessage `json:"members"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
			t.Fatal(err)
		}
		if _, ok := raw.Members[1]["fencing_token"]; ok {
			t.Errorf("a standby member carries a fencing token: %s", r.stdout)
		}
	})

	t.Run("none registered", func(t *testing.T) {
		putCandidate(t, client, "/leaderd", "lonely", "app-9")
		r := invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", srv.Endpoint(), "--election", "lonely")
		if r.code != exitOK || !strings.Contains(r.stdout, "members: none registered") || strings.Contains(r.stdout, "availability") {
			t.Errorf("exit %d, stdout %q; want 0 and members: none registered", r.code, r.stdout)
		}
		r = invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", srv.Endpoint(), "--election", "lonely", "--json")
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
			t.Fatalf("decode %q: %v", r.stdout, err)
		}
		if string(raw["members"]) != "[]" || string(raw["availability"]) != "0" {
			t.Errorf(`"members" = %s, "availability" = %s; want [] and 0`, raw["members"], raw["availability"])
		}
	})
}

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor polls buf until cond holds, failing the test after waitTimeout.
func waitFor(t *testing.T, buf *syncBuffer, what string, cond func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond(buf.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; output:\n%s", what, waitTimeout, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startWatch runs the --watch core until the returned stop is called; stop
// fails the test unless the core returns nil promptly.
func startWatch(t *testing.T, w *statusWatch) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("watch returned %v, want nil", err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("watch did not return within %s of cancel", waitTimeout)
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestStatusWatch(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	putCandidate(t, client, "/leaderd", "db", "app-1")
	publishMember(t, client, "/leaderd", "db", member("app-1", "primary", true))
	publishMember(t, client, "/leaderd", "db", member("app-2", "standby", false))

	t.Run("text", func(t *testing.T) {
		var out, errOut syncBuffer
		stop := startWatch(t, &statusWatch{store: election.NewStore(client, "/leaderd", "db"),
			out: &out, errOut: &errOut, endpoints: srv.Endpoint()})
		waitFor(t, &out, "first draw", func(s string) bool { return strings.Contains(s, "availability: 1/2 healthy") })

		publishMember(t, client, "/leaderd", "db", member("app-3", "standby", true))
		waitFor(t, &out, "redraw with app-3", func(s string) bool { return strings.Contains(s, "availability: 2/3 healthy") })
		stop()

		s := out.String()
		// Not a terminal: no escape codes; redraws are separated by a blank
		// line and a time stamp header.
		if strings.Contains(s, "\033[") {
			t.Errorf("escape codes written to a non-terminal:\n%q", s)
		}
		if !strings.HasPrefix(s, "--- ") || !strings.Contains(s, "\n\n--- ") {
			t.Errorf("want each redraw to start with a time stamp header after a blank line:\n%s", s)
		}
		if !regexp.MustCompile(`(?m)^app-3\s+standby\s+yes\s+100\s+\d+s\s+-\s+app-3:8008$`).MatchString(s) {
			t.Errorf("redraw lacks app-3's row:\n%s", s)
		}
		if errOut.String() != "" {
			t.Errorf("stderr = %q, want nothing", errOut.String())
		}
	})

	t.Run("json", func(t *testing.T) {
		var out, errOut syncBuffer
		stop := startWatch(t, &statusWatch{store: election.NewStore(client, "/leaderd", "db"), json: true,
			out: &out, errOut: &errOut, endpoints: srv.Endpoint()})
		lines := func(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }
		waitFor(t, &out, "first object", func(s string) bool { return strings.HasSuffix(s, "\n") })

		// A burst of 20 changes on one lease is coalesced: at most one
		// object per watchCoalesce, plus the first and a trailing one.
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		lease, err := client.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for i := range 20 {
			m := member(fmt.Sprintf("app-%d", 4+i%2), "standby", i%3 == 0)
			if err := election.NewStore(client, "/leaderd", "db").PublishMember(ctx, lease.ID, m); err != nil {
				t.Fatal(err)
			}
		}
		burst := time.Since(start)
		waitFor(t, &out, "object with five members", func(s string) bool {
			var last jsonStatus
			return json.Unmarshal([]byte(lines(s)[len(lines(s))-1]), &last) == nil && last.Registered == 5
		})
		stop()

		all := lines(out.String())
		if limit := 2 + int(burst/watchCoalesce) + 1; len(all) > limit {
			t.Errorf("%d objects for a burst of 20 changes in %s, want at most %d", len(all), burst, limit)
		}
		for i, l := range all {
			var got jsonStatus
			dec := json.NewDecoder(strings.NewReader(l))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("line %d is not one status object: %v\n%s", i+1, err, l)
			}
			if i == 0 && (got.Registered != 3 || got.Availability != 2.0/3) {
				t.Errorf("first object: registered %d, availability %v; want 3 and 0.67", got.Registered, got.Availability)
			}
		}
	})
}

func TestStatusWatchEtcdRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	publishMember(t, client, "/leaderd", "db", member("app-1", "primary", true))

	var out, errOut syncBuffer
	stop := startWatch(t, &statusWatch{store: election.NewStore(client, "/leaderd", "db"),
		out: &out, errOut: &errOut, endpoints: srv.Endpoint(), check: 200 * time.Millisecond, callTimeout: time.Second})
	waitFor(t, &out, "first draw", func(s string) bool { return strings.Contains(s, "availability: 1/1 healthy") })

	t0 := time.Now()
	srv.Stop()
	defer func() { t.Logf("stderr after %s:\n%s", time.Since(t0), errOut.String()) }()
	waitFor(t, &errOut, "report of the lost etcd", func(s string) bool { return strings.Contains(s, "retrying in") })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	publishMember(t, client, "/leaderd", "db", member("app-2", "standby", false))
	waitFor(t, &out, "redraw after the restart", func(s string) bool { return strings.Contains(s, "availability: 1/2 healthy") })
	stop()
	if line := strings.SplitN(errOut.String(), "\n", 2)[0]; !strings.HasPrefix(line, "leaderd status: etcd") {
		t.Errorf("stderr = %q, want lines starting with leaderd status: etcd", errOut.String())
	}
}

func TestStatusWatchUnreachable(t *testing.T) {
	t.Parallel() // it waits out timeouts; nothing shared
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close()

	r := invokeBounded(t, 20*time.Second, nil, "status", "--watch", "--endpoints", endpoint, "--election", "web")
	if r.code != exitError {
		t.Errorf("exit %d, want %d", r.code, exitError)
	}
	if line := oneLineErr(t, r); !strings.HasPrefix(line, "leaderd status: etcd unreachable at "+endpoint+": ") {
		t.Errorf("stderr = %q, want etcd unreachable", line)
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&syncBuffer{}) {
		t.Error("a buffer is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is not a terminal")
	}
}

// statusJSON runs `leaderd status --json` and decodes its output strictly
// (unknown fields fail), returning the output too.
func statusJSON(t *testing.T, endpoint, electionName string) (jsonStatus, result) {
	t.Helper()
	r := invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", endpoint, "--election", electionName, "--json")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
	}
	var got jsonStatus
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode %q: %v", r.stdout, err)
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON value: %q", r.stdout)
	}
	return got, r
}
