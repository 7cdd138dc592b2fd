package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// replica is one App behind an httptest server.
type replica struct {
	*App
	url string
}

// cluster starts one replica per peers spec. Each spec lists the peers by
// index into the cluster, or -1 for an address where nothing listens.
func cluster(t *testing.T, peerSpecs ...[]int) []replica {
	t.Helper()
	dead := deadAddr(t)
	servers := make([]*httptest.Server, len(peerSpecs))
	for i := range servers {
		servers[i] = httptest.NewUnstartedServer(nil)
	}
	rs := make([]replica, len(peerSpecs))
	for i, spec := range peerSpecs {
		var peers []string
		for _, p := range spec {
			if p < 0 {
				peers = append(peers, "http://"+dead)
			} else {
				peers = append(peers, "http://"+servers[p].Listener.Addr().String())
			}
		}
		a := New(fmt.Sprintf("app%d", i+1), peers, slog.New(slog.DiscardHandler))
		servers[i].Config.Handler = a
		servers[i].Start()
		t.Cleanup(servers[i].Close)
		rs[i] = replica{App: a, url: servers[i].URL}
	}
	return rs
}

// full is the usual three replicas, each with the two others as peers.
func full(t *testing.T) []replica {
	return cluster(t, []int{1, 2}, []int{0, 2}, []int{0, 1})
}

// deadAddr is a loopback address where nothing listens (connection
// refused). Port 1 is privileged and unused; a port freed by the test could
// be handed straight back to one of its own servers.
func deadAddr(*testing.T) string { return "127.0.0.1:1" }

var client = &http.Client{Timeout: 10 * time.Second}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := client.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func (r replica) promote(t *testing.T, token int64) {
	t.Helper()
	if code, body := post(t, fmt.Sprintf("%s/promote?token=%d", r.url, token), ""); code != http.StatusOK {
		t.Fatalf("promote %d: %d %s", token, code, body)
	}
}

func (r replica) write(t *testing.T, id, data string) (int, string) {
	t.Helper()
	return post(t, r.url+"/write?id="+id, data)
}

func (r replica) log(t *testing.T) []Entry {
	t.Helper()
	var entries []Entry
	getJSON(t, r.url+"/log", &entries)
	return entries
}

func (r replica) role(t *testing.T) Role {
	t.Helper()
	var role Role
	getJSON(t, r.url+"/role", &role)
	return role
}

// ids lists the log's ids with their tokens, "a@5 b@5".
func ids(entries []Entry) string {
	var s []string
	for _, e := range entries {
		s = append(s, fmt.Sprintf("%s@%d", e.ID, e.Token))
	}
	return strings.Join(s, " ")
}

func TestWriteRefusedOnStandby(t *testing.T) {
	rs := full(t)
	if code, body := rs[0].write(t, "a", "x"); code != http.StatusServiceUnavailable {
		t.Fatalf("write on a fresh standby: %d %s, want 503", code, body)
	}
	rs[0].promote(t, 5)
	if code, _ := post(t, rs[0].url+"/demote?token=5", ""); code != http.StatusOK {
		t.Fatalf("demote: %d", code)
	}
	if code, body := rs[0].write(t, "a", "x"); code != http.StatusServiceUnavailable {
		t.Fatalf("write after demote: %d %s, want 503", code, body)
	}
	for _, r := range rs {
		if got := ids(r.log(t)); got != "" {
			t.Errorf("%s log = %q, want empty", r.id, got)
		}
	}
	if got := rs[0].role(t); got.Role != roleStandby || got.Promotes != 1 || got.Demotes != 1 || got.MaxSeen != 5 {
		t.Errorf("role = %+v", got)
	}
}

func TestWriteAcceptedWithOneOfTwoPeers(t *testing.T) {
	// app1's second peer is down: itself + app2 is still a majority of 3.
	rs := cluster(t, []int{1, -1}, []int{0, -1})
	rs[0].promote(t, 5)
	code, body := rs[0].write(t, "a", "hello")
	if code != http.StatusOK {
		t.Fatalf("write: %d %s, want 200", code, body)
	}
	var e Entry
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.ID != "a" || e.Token != 5 || e.Data != "hello" {
		t.Fatalf("write answered %s (%v)", body, err)
	}
	for _, r := range rs {
		if got := ids(r.log(t)); got != "a@5" {
			t.Errorf("%s log = %q, want a@5", r.id, got)
		}
	}
	// A retry of the same id is acknowledged again, not written twice.
	if code, _ := rs[0].write(t, "a", "hello"); code != http.StatusOK {
		t.Fatalf("retry: %d", code)
	}
	if got := ids(rs[0].log(t)); got != "a@5" {
		t.Errorf("after retry: %q", got)
	}
}

func TestWriteWithoutMajority(t *testing.T) {
	// Both of app1's peers are down: it may not promote (it could miss
	// acknowledged writes), so it never acknowledges a write alone.
	rs := cluster(t, []int{-1, -1})
	if code, body := post(t, rs[0].url+"/promote?token=5", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("promote without a majority: %d %s, want 503", code, body)
	}
	if code, _ := rs[0].write(t, "a", "x"); code != http.StatusServiceUnavailable {
		t.Fatalf("write: %d, want 503", code)
	}
}

func TestStalePrimaryWriteRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fenced []int // replicas a newer primary (token 7) has synced
	}{
		{"both peers fenced", []int{1, 2}},
		{"one peer fenced, the other retracts", []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := full(t)
			rs[0].promote(t, 5)
			if code, body := rs[0].write(t, "before", "x"); code != http.StatusOK {
				t.Fatalf("write before: %d %s", code, body)
			}
			// A newer tenure fences replicas the way its promote does.
			for _, i := range tc.fenced {
				if code, body := post(t, rs[i].url+"/sync?token=7", ""); code != http.StatusOK {
					t.Fatalf("sync: %d %s", code, body)
				}
			}
			code, body := rs[0].write(t, "stale", "x")
			if code != http.StatusConflict || !strings.Contains(body, "stale fencing token") {
				t.Fatalf("stale write: %d %s, want 409 stale fencing token", code, body)
			}
			for _, r := range rs {
				if got := ids(r.log(t)); got != "before@5" {
					t.Errorf("%s log = %q, want before@5 only", r.id, got)
				}
			}
			// The stale primary learnt the newer tenure and refuses at once.
			if got := rs[0].role(t); got.MaxSeen != 7 {
				t.Errorf("stale primary's max_seen = %d, want 7", got.MaxSeen)
			}
			if code, _ := rs[0].write(t, "again", "x"); code != http.StatusConflict {
				t.Errorf("next stale write: %d, want 409", code)
			}
		})
	}
}

func TestRetractRefusedAfterNewerSync(t *testing.T) {
	// Once a newer tenure has synced a replica it may have copied an entry,
	// so the replica must not pretend the entry is gone.
	rs := full(t)
	e := `{"id":"x","token":5,"data":"d","at":"2026-01-01T00:00:00Z"}`
	if code, body := post(t, rs[1].url+"/replicate", e); code != http.StatusOK {
		t.Fatalf("replicate: %d %s", code, body)
	}
	if code, _ := post(t, rs[1].url+"/sync?token=7", ""); code != http.StatusOK {
		t.Fatal("sync")
	}
	if code, _ := post(t, rs[1].url+"/retract?id=x&token=5", ""); code != http.StatusConflict {
		t.Fatalf("retract after sync: %d, want 409", code)
	}
	if code, _ := post(t, rs[1].url+"/replicate", e); code != http.StatusConflict {
		t.Fatalf("replicate of an older tenure after sync: %d, want 409", code)
	}
}

func TestPromoteMergesPeerLog(t *testing.T) {
	// app1 (primary, token 5) replicates to app2 only: app3 is not its peer.
	// app3 then becomes primary (token 7) and must pull app1's writes from
	// app2, since app1 is gone.
	rs := cluster(t, []int{1, -1}, []int{0, 2}, []int{-1, 1})
	rs[0].promote(t, 5)
	for _, id := range []string{"a", "b"} {
		if code, body := rs[0].write(t, id, "v-"+id); code != http.StatusOK {
			t.Fatalf("write %s: %d %s", id, code, body)
		}
	}
	if got := ids(rs[2].log(t)); got != "" {
		t.Fatalf("app3 log before promote = %q, want empty", got)
	}
	rs[2].promote(t, 7)
	if got := ids(rs[2].log(t)); got != "a@5 b@5" {
		t.Fatalf("app3 log after promote = %q, want a@5 b@5", got)
	}
	if code, body := rs[2].write(t, "c", "v-c"); code != http.StatusOK {
		t.Fatalf("write c: %d %s", code, body)
	}
	if got := ids(rs[1].log(t)); got != "a@5 b@5 c@7" {
		t.Errorf("app2 log = %q", got)
	}
	// The old primary, still believing it is primary, is fenced by app2.
	if code, body := rs[0].write(t, "d", "x"); code != http.StatusConflict {
		t.Errorf("old primary's write: %d %s, want 409", code, body)
	}
	if got := rs[2].role(t); got.Role != rolePrimary || got.Token != 7 || got.MaxSeen != 7 {
		t.Errorf("app3 role = %+v", got)
	}
}

func TestConcurrentWrites(t *testing.T) {
	rs := full(t)
	rs[0].promote(t, 5)
	const n = 40
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() { codes[i], _ = rs[0].write(t, fmt.Sprintf("w%d", i), "x") })
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("write w%d: %d", i, c)
		}
	}
	for _, r := range rs {
		if got := len(r.log(t)); got != n {
			t.Errorf("%s holds %d entries, want %d", r.id, got, n)
		}
	}
}
