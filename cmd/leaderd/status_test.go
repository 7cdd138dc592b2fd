package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// candidate is a key written as a campaigning replica would write it.
type candidate struct {
	id      string
	lease   clientv3.LeaseID
	created int64 // the key's create revision: the fencing token if it leads
}

// putCandidate writes <prefix>/<election>/candidates/<lease hex> on a new
// lease with the JSON value a replica publishes.
func putCandidate(t *testing.T, c *clientv3.Client, prefix, election, id string) candidate {
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
	key := fmt.Sprintf("%s/%s/candidates/%x", prefix, election, int64(lease.ID))
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
	} `json:"candidates"`
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
		r := invokeBounded(t, 20*time.Second, nil, "status", "--endpoints", srv.Endpoint(), "--election", "web", "--json")
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
	tests := []struct {
		name string
		args []string
		env  envMap
		want []string
	}{
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(tt.env, append([]string{"status"}, tt.args...)...)
			if r.code != exitBadInput {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, exitBadInput, r.stderr)
			}
			line := oneLineErr(t, r)
			if !strings.HasPrefix(line, "leaderd status: ") {
				t.Errorf("stderr = %q, want the prefix %q", line, "leaderd status: ")
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr = %q, want it to contain %q", line, w)
				}
			}
		})
	}
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
