package sidecar

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/role"
)

func scrape(t *testing.T, sc *Sidecar) string {
	t.Helper()
	rec := serve(sc, http.MethodGet, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	return rec.Body.String()
}

func assertMetric(t *testing.T, body string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(body, "\n"+l+"\n") {
			t.Errorf("no line %q in /metrics", l)
		}
	}
}

func TestMetricsFollowTheRole(t *testing.T) {
	m := startMachine(t, func(m *machine) { m.promote.results = []error{errors.New("exit status 1")} })
	c := m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	waitUntil(t, "campaigning", func() bool { return m.sc.Status().Phase == role.PhaseCampaigning })
	assertMetric(t, scrape(t, m.sc),
		"leaderd_is_primary 0",
		`leaderd_role_transitions_total{reason="elected"} 0`,
		`leaderd_hook_duration_seconds_count{hook="demote",result="ok"} 1`,
		"leaderd_etcd_reachable 1",
		"leaderd_app_healthy 1",
	)
	if body := scrape(t, m.sc); !strings.Contains(body, "go_goroutines ") || !strings.Contains(body, "leaderd_lease_seconds_to_deadline ") {
		t.Errorf("runtime or lease metrics missing")
	}

	// The first promote fails: a transition to primary and back.
	m.win(t, c, 3)
	m.win(t, m.candidacy(t), 4)
	waitUntil(t, "primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	assertMetric(t, scrape(t, m.sc),
		"leaderd_is_primary 1",
		`leaderd_role_transitions_total{reason="elected"} 2`,
		`leaderd_role_transitions_total{reason="promote-failed"} 1`,
		`leaderd_hook_duration_seconds_count{hook="promote",result="failed"} 1`,
		`leaderd_hook_duration_seconds_count{hook="promote",result="ok"} 1`,
	)
}

func TestMetricsCountKeepaliveFailures(t *testing.T) {
	st := newState()
	st.renewed(errors.New("context deadline exceeded"))
	st.renewed(errors.New("context deadline exceeded"))
	st.renewed(nil)
	sc := newSidecar(DefaultConfig(), nil, &fakeElector{}, nil, nil)
	sc.state = st
	assertMetric(t, scrape(t, sc), "leaderd_keepalive_failures_total 2", "leaderd_etcd_reachable 1")
	st.renewed(election.ErrSafeDeadline)
	assertMetric(t, scrape(t, sc), "leaderd_keepalive_failures_total 3", "leaderd_etcd_reachable 0")
}
