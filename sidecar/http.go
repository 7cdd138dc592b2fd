package sidecar

import (
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
