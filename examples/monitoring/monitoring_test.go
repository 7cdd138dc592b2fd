// Package monitoring tests the Prometheus rules, scrape configuration and
// Grafana dashboard in examples/monitoring: with the real promtool, and
// against the real /metrics of running leaderd replicas.
package monitoring

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"sigs.k8s.io/yaml"

	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// Bounds of the waits below.
const (
	promtoolTimeout = time.Minute
	testTimeout     = time.Minute
	closeGrace      = 10 * time.Second
	pollInterval    = 20 * time.Millisecond
)

var binary string // built once by TestMain

func TestMain(m *testing.M) {
	bin, remove, err := replicas.BuildTemp()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = bin
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		remove()
		os.Exit(code)
	}))
}

// promtool runs the real promtool and returns its output; it fails the test,
// never skips it, when promtool is missing.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (%v): these checks need the real one. "+
			"Install it (Debian: apt-get install prometheus; .ci/run does)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), promtoolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRulesAndScrapeConfigParse(t *testing.T) {
	promtool(t, "check", "rules", "rules.yml")
	// Checks the scrape configuration and the rule files it loads.
	promtool(t, "check", "config", "prometheus.yml")
}

// TestAlertsFireAndStayQuiet runs rules_test.yml: two primaries and no
// primary fire, a healthy election and a clean hand-off stay quiet, and
// so on for every alert. It also checks that every alert is shown firing.
func TestAlertsFireAndStayQuiet(t *testing.T) {
	promtool(t, "test", "rules", "rules_test.yml")

	var rules struct {
		Groups []struct {
			Rules []struct{ Alert string }
		}
	}
	readYAML(t, "rules.yml", &rules)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	readYAML(t, "rules_test.yml", &tests)
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			fires[a.Alertname] = fires[a.Alertname] || len(a.ExpAlerts) > 0
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !fires[r.Alert] {
				t.Errorf("alert %s: rules_test.yml never shows it firing", r.Alert)
			}
		}
	}
}

// grafanaVars are the dashboard's variables with values that make its
// expressions plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$election", ".*")

// TestDashboardQueriesParse hands every expression of the dashboard to
// promtool, as recording rules, so a typo in PromQL fails here.
func TestDashboardQueriesParse(t *testing.T) {
	exprs := dashboardExprs(t)
	if len(exprs) == 0 {
		t.Fatal("dashboard.json has no expressions")
	}
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rs []rule
	for i, e := range exprs {
		rs = append(rs, rule{Record: fmt.Sprintf("dashboard:expr_%d", i), Expr: grafanaVars.Replace(e)})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rs}}})
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/dashboard-rules.yml"
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", path)
}

// TestRealSidecar starts two real leaderd replicas on an embedded etcd and
// checks what the monitoring examples rely on against their real answers.
func TestRealSidecar(t *testing.T) {
	const electionName = "monitoring-test"
	srv := etcdtest.Start(t)
	set, err := replicas.NewSet(binary, t.TempDir(), electionName, 3*time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before etcd stops (clean-ups run last first)
		set.Close(closeGrace)
		http.DefaultClient.CloseIdleConnections()
	})
	primary, err := set.Start("m1", srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	waitFor(ctx, t, "m1 primary", func() bool { code, _ := primary.Get(ctx, "/primary"); return code == http.StatusOK })
	standby, err := set.Start("m2", srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "m2 campaigning", func() bool {
		st, err := standby.Status(ctx)
		return err == nil && st.Phase == role.PhaseCampaigning
	})

	t.Run("every metric the rules and dashboard use is scraped, labelled", func(t *testing.T) {
		used := usedMetrics(t)
		for _, r := range []*replicas.Replica{primary, standby} {
			body := get(ctx, t, r, "/metrics").body
			fams := parseScrape(t, body, map[string]string{"election": electionName, "id": r.ID})
			for _, name := range used {
				if _, ok := fams.family(name); !ok {
					t.Errorf("%s: %s is used by the rules or dashboard but not in /metrics", r.ID, name)
				}
			}
			// LeaderdHookFailures needs the failed series before the first
			// failure: increase() does not count a series born at 1.
			for _, hook := range []string{"promote", "demote"} {
				line := fmt.Sprintf(`leaderd_hook_duration_seconds_count{election=%q,hook=%q,id=%q,result="failed"} 0`, electionName, hook, r.ID)
				if !slices.Contains(strings.Split(body, "\n"), line) {
					t.Errorf("%s: no line %s", r.ID, line)
				}
			}
		}
	})

	t.Run("the fencing token as a proxy and Prometheus see it", func(t *testing.T) {
		st, err := primary.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.FencingToken <= 0 {
			t.Fatalf("m1 /status fencing_token = %d", st.FencingToken)
		}
		want := strconv.FormatInt(st.FencingToken, 10)
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			for _, path := range []string{"/primary", "/status"} {
				a := do(ctx, t, primary, method, path)
				if got := a.header.Values(sidecar.FencingTokenHeader); a.code != http.StatusOK || !slices.Equal(got, []string{want}) {
					t.Errorf("m1 %s %s = %d, %s %q, want 200 with [%s]", method, path, a.code, sidecar.FencingTokenHeader, got, want)
				}
			}
			a := do(ctx, t, standby, method, "/primary")
			if got := a.header.Values(sidecar.FencingTokenHeader); a.code != http.StatusServiceUnavailable || got != nil {
				t.Errorf("m2 %s /primary = %d, %s %q, want 503 without it", method, a.code, sidecar.FencingTokenHeader, got)
			}
		}
		for r, want := range map[*replicas.Replica]string{primary: want, standby: "0"} {
			line := fmt.Sprintf(`leaderd_fencing_token{election=%q,id=%q} %s`, electionName, r.ID, want)
			if !slices.Contains(strings.Split(get(ctx, t, r, "/metrics").body, "\n"), line) {
				t.Errorf("%s: no line %s in /metrics", r.ID, line)
			}
		}
	})
}

// metricName is a leaderd metric as the rules and dashboard spell it.
var metricName = regexp.MustCompile(`\bleaderd_[a-z_]+[a-z]\b`)

// usedMetrics are the leaderd metric names in rules.yml and dashboard.json
// (expressions, variables, annotations and comments alike).
func usedMetrics(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, file := range []string{"rules.yml", "dashboard.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, metricName.FindAllString(string(b), -1)...)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) < 8 {
		t.Fatalf("only %d leaderd metrics found in the rules and dashboard: %v", len(names), names)
	}
	return names
}

// dashboardExprs are the PromQL expressions of dashboard.json's panels.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// scrape is a /metrics body's families: name to type.
type scrape map[string]string

// family finds the family a name used in PromQL belongs to: a histogram's
// _bucket, _sum and _count series count as the histogram.
func (s scrape) family(name string) (string, bool) {
	if _, ok := s[name]; ok {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && s[base] == "histogram" {
			return base, true
		}
	}
	return "", false
}

// parseScrape reads the families that have samples, and checks that every
// sample, leaderd's and the runtime's, carries the wanted labels.
func parseScrape(t *testing.T, body string, want map[string]string) scrape {
	t.Helper()
	types, fams := map[string]string{}, scrape{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			types[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, labels, _ := strings.Cut(line, "{")
		for k, v := range want {
			if !strings.Contains(labels, fmt.Sprintf("%s=%q", k, v)) {
				t.Errorf("%s lacks %s=%q", line, k, v)
			}
		}
		if base, _ := (scrape(types)).family(name); base != "" {
			fams[base] = types[base]
		}
	}
	if len(fams) == 0 {
		t.Fatalf("no metrics in /metrics:\n%s", body)
	}
	return fams
}

type answer struct {
	code   int
	header http.Header
	body   string
}

func get(ctx context.Context, t *testing.T, r *replicas.Replica, path string) answer {
	t.Helper()
	a := do(ctx, t, r, http.MethodGet, path)
	if a.code != http.StatusOK {
		t.Fatalf("%s GET %s = %d", r.ID, path, a.code)
	}
	return a
}

func do(ctx context.Context, t *testing.T, r *replicas.Replica, method, path string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+r.APIAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s %s: %v", r.ID, method, path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		t.Fatalf("%s %s %s: %v", r.ID, method, path, err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: b.String()}
}

// waitFor polls ok until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, ok func() bool) {
	t.Helper()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
