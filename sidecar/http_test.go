package sidecar

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/leaderd/leaderd/role"
)

func serve(sc *Sidecar, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	sc.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHTTPRoleEndpoints(t *testing.T) {
	m := startMachine(t, nil)
	c := m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	waitUntil(t, "campaigning", func() bool { return m.sc.Status().Phase == role.PhaseCampaigning })
	for path, want := range map[string]int{"/primary": 503, "/standby": 200, "/healthz": 200, "/status": 200} {
		if got := serve(m.sc, http.MethodGet, path).Code; got != want {
			t.Errorf("standby: GET %s = %d, want %d", path, got, want)
		}
	}
	m.win(t, c, 11)
	waitUntil(t, "primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	for path, want := range map[string]int{"/primary": 200, "/standby": 503, "/healthz": 200} {
		if got := serve(m.sc, http.MethodGet, path).Code; got != want {
			t.Errorf("primary: GET %s = %d, want %d", path, got, want)
		}
	}
	// HEAD answers like GET, without a body, for load balancers.
	head := serve(m.sc, http.MethodHead, "/primary")
	if head.Code != 200 || head.Body.Len() != 0 {
		t.Errorf("HEAD /primary = %d with %d bytes", head.Code, head.Body.Len())
	}
	if got := serve(m.sc, http.MethodPost, "/primary").Code; got != http.StatusMethodNotAllowed {
		t.Errorf("POST /primary = %d", got)
	}
	var st Status
	if err := json.Unmarshal(serve(m.sc, http.MethodGet, "/status").Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.ID != "me" || st.Election != "e" || st.Role != role.Primary || st.FencingToken != 11 ||
		st.Lease == nil || st.Lease.TTLSeconds != 15 || st.LastTransition == nil || st.Hooks["promote"].Reason != role.ReasonElected {
		t.Errorf("status %+v", st)
	}
}

// TestHTTPFencingTokenHeader: /primary and /status carry the held tenure's
// token in X-Leaderd-Fencing-Token, GET and HEAD alike; a standby sends
// none; a promoting replica's 503 carries it, every 200 does.
func TestHTTPFencingTokenHeader(t *testing.T) {
	release := make(chan struct{})
	m := startMachine(t, func(m *machine) { m.promote.block = release })
	c := m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	waitUntil(t, "campaigning", func() bool { return m.sc.Status().Phase == role.PhaseCampaigning })
	header := func(method, path string) (int, []string) {
		rec := serve(m.sc, method, path)
		return rec.Code, rec.Header().Values(FencingTokenHeader)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, path := range []string{"/primary", "/status", "/standby"} {
			if _, got := header(method, path); got != nil {
				t.Errorf("standby: %s %s sends %s %q, want none", method, path, FencingTokenHeader, got)
			}
		}
	}

	m.win(t, c, 11)
	waitUntil(t, "promoting", func() bool { return m.sc.Status().Phase == role.PhasePromoting })
	if code, got := header(http.MethodGet, "/primary"); code != http.StatusServiceUnavailable || len(got) != 1 || got[0] != "11" {
		t.Errorf("promoting: GET /primary = %d with %q, want 503 with [11]", code, got)
	}
	close(release)
	waitUntil(t, "primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for path, want := range map[string]int{"/primary": 200, "/status": 200} {
			if code, got := header(method, path); code != want || len(got) != 1 || got[0] != "11" {
				t.Errorf("primary: %s %s = %d with %q, want %d with [11]", method, path, code, got, want)
			}
		}
	}
	if _, got := header(http.MethodGet, "/standby"); got != nil {
		t.Errorf("primary: GET /standby sends %q, want none", got)
	}
}
