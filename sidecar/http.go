package sidecar

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"time"
)

// Handler serves the HTTP API: /primary, /standby, /healthz, /status,
// /metrics.
// /primary and /standby answer 200 or 503 so that load balancers (HAProxy
// httpchk, Patroni-style) can route by role.
func (s *Sidecar) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/primary", s.check(func() bool { return s.state.servingPrimary(time.Now()) }))
	mux.HandleFunc("/standby", s.check(func() bool {
		st := s.Status()
		return st.Role == RoleStandby && st.Phase == PhaseCampaigning && st.Healthy && st.AppHealthy
	}))
	mux.HandleFunc("/healthz", s.check(s.state.healthy))
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		writeJSON(w, r, http.StatusOK, s.Status())
	})
	mux.Handle("/metrics", s.state.metrics.handler())
	mux.HandleFunc("/resign", s.handleResign)
	return mux
}

func (s *Sidecar) check(ok func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		code := http.StatusServiceUnavailable
		if ok() {
			code = http.StatusOK
		}
		st := s.Status()
		writeJSON(w, r, code, map[string]any{"id": st.ID, "role": st.Role, "phase": st.Phase, "healthy": st.Healthy})
	}
}

// handleResign is POST /resign: the primary steps down (reason resigned)
// and another replica takes over. It needs --api-token, sent as a bearer
// token: without a configured token it is refused, as anyone who can reach
// the API could otherwise force a failover.
func (s *Sidecar) handleResign(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	want := "Bearer " + s.cfg.APIToken
	got := r.Header.Get("Authorization")
	if s.cfg.APIToken == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		http.Error(w, "forbidden: POST /resign needs --api-token, sent as 'Authorization: Bearer TOKEN'", http.StatusForbidden)
		return
	}
	if !s.state.servingPrimary(time.Now()) {
		http.Error(w, "not the primary", http.StatusConflict)
		return
	}
	wake(s.resignRequests)
	writeJSON(w, r, http.StatusAccepted, map[string]string{"id": s.cfg.ID, "status": "resigning"})
}

func readOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method == http.MethodHead {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
