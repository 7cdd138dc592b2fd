package main

import (
	"context"
	"encoding/json"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
)

// jsonHistory mirrors the documented --json output.
type jsonHistory struct {
	Election string `json:"election"`
	Tenures  []struct {
		ID           string     `json:"id"`
		FencingToken int64      `json:"fencing_token"`
		Start        time.Time  `json:"start"`
		End          *time.Time `json:"end"`
		EndReason    string     `json:"end_reason"`
		State        string     `json:"state"`
	} `json:"tenures"`
}

func TestHistory(t *testing.T) {
	srv := etcdtest.Start(t)
	client := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	recordTenure := func(rec election.TenureRecord) {
		t.Helper()
		if err := election.NewStore(client, "/leaderd", "web").RecordTenure(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}

	// Three tenures before the current one: ended, crashed (no end
	// record), ended again; then app-1 leads with the newest token.
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	recordTenure(election.TenureRecord{ID: "app-1", FencingToken: 2, Start: base,
		End: base.Add(90 * time.Second), EndReason: "shutdown"})
	recordTenure(election.TenureRecord{ID: "app-2", FencingToken: 3, Start: base.Add(2 * time.Minute)})
	recordTenure(election.TenureRecord{ID: "app-3", FencingToken: 4, Start: base.Add(3 * time.Minute),
		End: base.Add(4 * time.Minute), EndReason: "lease-lost"})
	leader := putCandidate(t, client, "/leaderd", "web", "app-1")
	recordTenure(election.TenureRecord{ID: "app-1", FencingToken: leader.created, Start: base.Add(5 * time.Minute)})
	// Another election's history must not show.
	if err := election.NewStore(client, "/leaderd", "web2").RecordTenure(ctx, election.TenureRecord{ID: "other-1", FencingToken: 99, Start: base}); err != nil {
		t.Fatal(err)
	}

	t.Run("json", func(t *testing.T) {
		r := invokeBounded(t, 20*time.Second, nil, "history", "--endpoints", srv.Endpoint(), "--election", "web", "--json")
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
		}
		var got jsonHistory
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("decode %q: %v", r.stdout, err)
		}
		if got.Election != "web" {
			t.Errorf("election = %q, want web", got.Election)
		}
		want := []struct {
			id, state, reason string
			token             int64
			ended             bool
		}{
			{"app-1", "current", "", leader.created, false},
			{"app-3", "ended", "lease-lost", 4, true},
			{"app-2", "unrecorded", "", 3, false},
			{"app-1", "ended", "shutdown", 2, true},
		}
		if len(got.Tenures) != len(want) {
			t.Fatalf("tenures = %+v, want %d", got.Tenures, len(want))
		}
		for i, w := range want {
			g := got.Tenures[i]
			if g.ID != w.id || g.State != w.state || g.EndReason != w.reason || g.FencingToken != w.token || (g.End != nil) != w.ended || g.Start.IsZero() {
				t.Errorf("tenures[%d] = %+v, want %+v", i, g, w)
			}
		}
		if e := got.Tenures[1].End; e == nil || !e.Equal(base.Add(4*time.Minute)) {
			t.Errorf("tenures[1].end = %v, want %v", e, base.Add(4*time.Minute))
		}
	})

	t.Run("text", func(t *testing.T) {
		r := invokeBounded(t, 20*time.Second, nil, "history", "--endpoints", srv.Endpoint(), "--election", "web")
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
		}
		t.Logf("output:\n%s", r.stdout)
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != 5 {
			t.Fatalf("want a header and 4 rows:\n%s", r.stdout)
		}
		if !regexp.MustCompile(`^TOKEN\s+ID\s+START\s+END\s+DURATION\s+REASON$`).MatchString(lines[0]) {
			t.Errorf("header = %q", lines[0])
		}
		tok := strconv.FormatInt(leader.created, 10)
		rows := []string{
			`^` + tok + `\s+app-1\s+\S+\s+-\s+\S+ so far\s+current tenure$`,
			`^4\s+app-3\s+\S+\s+\S+\s+1m0s\s+lease-lost$`,
			`^3\s+app-2\s+\S+\s+-\s+-\s+ended without a record \(crash or cut-off\)$`,
			`^2\s+app-1\s+\S+\s+\S+\s+1m30s\s+shutdown$`,
		}
		for i, re := range rows {
			if !regexp.MustCompile(re).MatchString(lines[i+1]) {
				t.Errorf("row %d = %q, want it to match %s", i+1, lines[i+1], re)
			}
		}
		// Aligned: every row's ID column starts where the header's does.
		col := strings.Index(lines[0], "ID")
		for _, l := range lines[1:] {
			if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
				t.Errorf("row %q is not aligned with the header", l)
			}
		}
		if strings.Contains(r.stdout, "other-1") {
			t.Errorf("output shows another election's history:\n%s", r.stdout)
		}
	})

	t.Run("limit", func(t *testing.T) {
		r := invokeBounded(t, 20*time.Second, nil, "history", "--endpoints", srv.Endpoint(), "--election", "web", "--limit", "2", "--json")
		if r.code != exitOK {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		var got jsonHistory
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Tenures) != 2 || got.Tenures[0].FencingToken != leader.created || got.Tenures[1].FencingToken != 4 {
			t.Errorf("tenures = %+v, want the newest two", got.Tenures)
		}
	})

	t.Run("no leader", func(t *testing.T) {
		// Without a leader, an open record is a tenure whose end was lost.
		if err := election.NewStore(client, "/leaderd", "gone").RecordTenure(ctx, election.TenureRecord{ID: "app-9", FencingToken: 7, Start: base}); err != nil {
			t.Fatal(err)
		}
		r := invokeBounded(t, 20*time.Second, nil, "history", "--endpoints", srv.Endpoint(), "--election", "gone", "--json")
		var got jsonHistory
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != exitOK {
			t.Fatalf("exit %d, stderr %q, decode: %v", r.code, r.stderr, err)
		}
		if len(got.Tenures) != 1 || got.Tenures[0].State != "unrecorded" || got.Tenures[0].End != nil {
			t.Errorf("tenures = %+v, want one unrecorded", got.Tenures)
		}
	})

	t.Run("empty", func(t *testing.T) {
		r := invokeBounded(t, 20*time.Second, nil, "history", "--endpoints", srv.Endpoint(), "--election", "empty", "--json")
		if r.code != exitOK {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
			t.Fatal(err)
		}
		if string(raw["tenures"]) != "[]" {
			t.Errorf(`"tenures" = %s, want []`, raw["tenures"])
		}
		r = invokeBounded(t, 20*time.Second, nil, "history", "--endpoints", srv.Endpoint(), "--election", "empty")
		if r.code != exitOK || !strings.Contains(r.stdout, "no tenures recorded") {
			t.Errorf("exit %d, stdout %q; want 0 and no tenures recorded", r.code, r.stdout)
		}
	})
}

func TestHistoryUnreachable(t *testing.T) {
	t.Parallel() // it waits out timeouts; nothing shared
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close()

	r := invokeBounded(t, 20*time.Second, nil, "history", "--endpoints", endpoint, "--election", "web")
	if r.code != exitError {
		t.Errorf("exit %d, want %d", r.code, exitError)
	}
	line := oneLineErr(t, r)
	if want := "leaderd history: etcd unreachable at " + endpoint + ": "; !strings.HasPrefix(line, want) {
		t.Errorf("stderr = %q, want it to start with %q", line, want)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
}

func TestHistoryBadInput(t *testing.T) {
	tests := []badInput{
		{"unknown flag", []string{"--election", "web", "--ttl", "5s"}, nil, []string{"flag provided but not defined: -ttl"}},
		{"missing election", nil, nil, []string{"--election", "required"}},
		{"bad endpoint", []string{"--election", "web", "--endpoints", "etcd:2379"}, nil, []string{"--endpoints"}},
		{"limit zero", []string{"--election", "web", "--limit", "0"}, nil, []string{"--limit", "1 to 100"}},
		{"limit too big", []string{"--election", "web", "--limit", "101"}, nil, []string{"--limit"}},
		{"limit not a number", []string{"--election", "web", "--limit", "ten"}, nil, []string{"--limit", `"ten"`}},
		{"limit in env", []string{"--election", "web"}, envMap{"LEADERD_LIMIT": "-1"}, []string{"LEADERD_LIMIT"}},
		{"stray argument", []string{"--election", "web", "now"}, nil, []string{"unexpected argument", "leaderd history --help"}},
	}
	checkBadInput(t, "history", tests)
}

func TestHistoryHelp(t *testing.T) {
	for _, args := range [][]string{{"history", "--help"}, {"help", "history"}} {
		r := invoke(nil, args...)
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("%v: exit %d, stderr %q; want 0 and nothing", args, r.code, r.stderr)
		}
		for _, name := range []string{"endpoints", "election", "prefix", "limit", "cacert", "cert", "key", "user", "password-file"} {
			if !strings.Contains(r.stdout, "--"+name+" ") || !strings.Contains(r.stdout, "$"+envName(name)) {
				t.Errorf("%v: help lacks --%s or $%s", args, name, envName(name))
			}
		}
		if !strings.Contains(r.stdout, "--json") || !strings.Contains(r.stdout, "Usage: leaderd history") {
			t.Errorf("%v: help lacks --json or the synopsis:\n%s", args, r.stdout)
		}
	}
	if r := invoke(nil, "--help"); !strings.Contains(r.stdout, "history") {
		t.Errorf("leaderd --help does not list history:\n%s", r.stdout)
	}
}
