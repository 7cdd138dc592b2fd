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
		`leaderd_is_primary{election="e",id="me"} 0`,
		`leaderd_role_transitions_total{election="e",id="me",reason="elected"} 0`,
		`leaderd_hook_duration_seconds_count{election="e",hook="demote",id="me",result="ok"} 1`,
		`leaderd_etcd_reachable{election="e",id="me"} 1`,
		`leaderd_app_healthy{election="e",id="me"} 1`,
		`leaderd_degraded{election="e",id="me"} 0`,
		`leaderd_fencing_token{election="e",id="me"} 0`,
	)
	if body := scrape(t, m.sc); !strings.Contains(body, `go_goroutines{election="e",id="me"} `) || !strings.Contains(body, `leaderd_lease_seconds_to_deadline{election="e",id="me"} `) {
		t.Errorf("runtime or lease metrics missing")
	}

	// The first promote fails: a transition to primary and back.
	m.win(t, c, 3)
	m.win(t, m.candidacy(t), 4)
	waitUntil(t, "primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	assertMetric(t, scrape(t, m.sc),
		`leaderd_is_primary{election="e",id="me"} 1`,
		`leaderd_fencing_token{election="e",id="me"} 4`,
		`leaderd_role_transitions_total{election="e",id="me",reason="elected"} 2`,
		`leaderd_role_transitions_total{election="e",id="me",reason="promote-failed"} 1`,
		`leaderd_hook_duration_seconds_count{election="e",hook="promote",id="me",result="failed"} 1`,
		`leaderd_hook_duration_seconds_count{election="e",hook="promote",id="me",result="ok"} 1`,
	)
}

func TestMetricsCountKeepaliveFailures(t *testing.T) {
	st := newState("e", "me")
	st.renewed(errors.New("context deadline exceeded"))
	st.renewed(errors.New("context deadline exceeded"))
	st.renewed(nil)
	sc := newSidecar(DefaultConfig(), nil, &fakeElector{}, nil, nil)
	sc.state = st
	assertMetric(t, scrape(t, sc), `leaderd_keepalive_failures_total{election="e",id="me"} 2`, `leaderd_etcd_reachable{election="e",id="me"} 1`)
	st.renewed(election.ErrSafeDeadline)
	assertMetric(t, scrape(t, sc), `leaderd_keepalive_failures_total{election="e",id="me"} 3`, `leaderd_etcd_reachable{election="e",id="me"} 0`)
}

// TestMetricsDegradedFollowsAFailedDemote: leaderd_degraded is /status's
// degraded, 1 while a failed demote is retried.
func TestMetricsDegradedFollowsAFailedDemote(t *testing.T) {
	m := startMachine(t, func(m *machine) {
		m.demote.results = []error{nil}
		for range 1000 {
			m.demote.results = append(m.demote.results, errors.New("exit status 1"))
		}
	})
	ten := m.win(t, m.candidacy(t), 4)
	waitUntil(t, "phase primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	assertMetric(t, scrape(t, m.sc), `leaderd_degraded{election="e",id="me"} 0`)
	ten.lose(election.ErrKeyDeleted)
	waitUntil(t, "degraded", func() bool { return m.sc.Status().Degraded })
	assertMetric(t, scrape(t, m.sc), `leaderd_degraded{election="e",id="me"} 1`)
}
