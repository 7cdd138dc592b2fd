package sidecar

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Handler serves the HTTP API: /primary, /standby, /livez, /healthz,
// /status, /metrics.
// /primary and /standby answer 200 or 503 so that load balancers (HAProxy
// httpchk, Patroni-style) can route by role. /livez is for liveness probes:
// it stays 200 while a failed demote is retried, because a restart
// then would let the lease expire over an app that was never demoted. /healthz adds the
// failing demote, for alerting.
func (s *Sidecar) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/primary", s.handlePrimary)
	mux.HandleFunc("/standby", s.check(s.state.readableStandby))
	mux.HandleFunc("/livez", s.check(s.state.alive))
	mux.HandleFunc("/healthz", s.check(s.state.healthy))
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		st := s.Status()
		setFencingHeader(w, st.FencingToken)
		writeJSON(w, r, http.StatusOK, st)
	})
	mux.Handle("/metrics", readOnlyHandler(s.state.metrics.handler()))
	mux.HandleFunc("/resign", s.handleResign)
	return mux
}

// FencingTokenHeader carries, on /primary and /status answers, the fencing
// token of the tenure the replica holds; it is absent while none is held.
const FencingTokenHeader = "X-Leaderd-Fencing-Token"

// handlePrimary is GET /primary. The answer and the header come from one
// read of the state, so every 200 carries the token of the tenure it
// vouches for. A 503 carries the held tenure's token too (promoting,
// demoting, lost), which no one should trust without the 200.
func (s *Sidecar) handlePrimary(w http.ResponseWriter, r *http.Request) {
	if !readOnly(w, r) {
		return
	}
	serving, held := s.state.fencing(time.Now())
	setFencingHeader(w, held)
	s.writeCheck(w, r, serving != 0)
}

func (s *Sidecar) check(ok func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		s.writeCheck(w, r, ok())
	}
}

func (s *Sidecar) writeCheck(w http.ResponseWriter, r *http.Request, ok bool) {
	code := http.StatusServiceUnavailable
	if ok {
		code = http.StatusOK
	}
	st := s.Status()
	writeJSON(w, r, code, map[string]any{"id": st.ID, "role": st.Role, "phase": st.Phase, "healthy": st.Healthy})
}

// setFencingHeader sets FencingTokenHeader to token; a standby (token 0)
// sends none, as /status omits its fencing_token.
func setFencingHeader(w http.ResponseWriter, token int64) {
	if token != 0 {
		w.Header().Set(FencingTokenHeader, strconv.FormatInt(token, 10))
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
	if c, _ := s.state.controlRead(); c.Paused {
		http.Error(w, "the election is paused: resume it first (leaderd resume)", http.StatusConflict)
		return
	}
	// The request is for this tenure only: one accepted just as the tenure
	// ended must not end the next one.
	token := s.state.servingToken(time.Now())
	if token == 0 {
		http.Error(w, "not the primary", http.StatusConflict)
		return
	}
	s.state.requestResign(token)
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

// readOnlyHandler refuses methods other than GET and HEAD as the other
// read-only endpoints do (promhttp answers every method), and sends no body
// to HEAD.
func readOnlyHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		if r.Method == http.MethodHead {
			w = headWriter{w}
		}
		h.ServeHTTP(w, r)
	})
}

// headWriter drops the body of a HEAD response.
type headWriter struct{ http.ResponseWriter }

func (headWriter) Write(p []byte) (int, error) { return len(p), nil }

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

// httpShutdownTimeout bounds the API server's graceful stop.
const httpShutdownTimeout = 2 * time.Second

// listen binds --listen and returns the actor that serves the API there
// until its context ends.
func (s *Sidecar) listen() (serve func(ctx context.Context), err error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	s.logger.Info("HTTP API listening", "addr", ln.Addr().String())
	return func(ctx context.Context) {
		srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.logger.Error("HTTP API stopped", "err", err)
			}
		}()
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
}
