package sidecar

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

const fuzzAPIToken = "fuzz-token"

// fuzzPrimary is a sidecar on the fakes of machine_test.go that is primary
// (with POST /resign enabled), and what it takes to make it primary again
// after a fuzzed request made it resign.
type fuzzPrimary struct {
	sc    *Sidecar
	el    *fakeElector
	calls *calls
	token int64
}

func startFuzzPrimary(f *testing.F) *fuzzPrimary {
	f.Helper()
	cl := newCalls()
	p := &fuzzPrimary{calls: cl, el: &fakeElector{calls: cl, cands: make(chan *fakeCandidacy, 4)}}
	cfg := DefaultConfig()
	cfg.Election, cfg.ID = "e", "me"
	cfg.Listen = "off"
	cfg.APIToken = fuzzAPIToken
	p.sc = newSidecar(cfg, slog.New(slog.DiscardHandler), p.el, &fakeHook{calls: cl}, &fakeHook{calls: cl})
	p.sc.newBackOff = func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.sc.Run(ctx) }()
	f.Cleanup(func() {
		p.sc.Abort()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			f.Error("Run did not return")
		}
	})
	p.promote(f)
	return p
}

// promote lets the next campaign win and waits until the sidecar serves
// as primary.
func (p *fuzzPrimary) promote(tb testing.TB) {
	tb.Helper()
	var c *fakeCandidacy
	select {
	case c = <-p.el.cands:
	case <-time.After(waitBound):
		tb.Fatal("no lease was granted")
	}
	p.token++
	c.win <- &fakeTenure{calls: p.calls, token: p.token}
	deadline := time.Now().Add(waitBound)
	for !p.sc.state.servingPrimary(time.Now()) {
		if time.Now().After(deadline) {
			tb.Fatalf("not primary after %s: %+v", waitBound, p.sc.Status())
		}
		time.Sleep(time.Millisecond)
	}
}

// isToken reports whether s is an HTTP method the server would parse.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// FuzzHTTPHandlers sends the API arbitrary requests (method, request
// target, body, Authorization header) while the sidecar is primary.
// Properties:
//   - no request panics or gets a 5xx, except the documented 503 of the
//     role and health checks (GET or HEAD on /primary, /standby, /livez,
//     /healthz);
//   - a read-only endpoint answers other methods 405 with Allow: GET, HEAD,
//     and GET and HEAD with its JSON, or /metrics its metrics (HEAD
//     without a body);
//   - POST /resign is accepted (202) only with the API token, refused 403
//     without it, and other methods get 405 with Allow: POST;
//   - no path outside the API's is answered 2xx.
func FuzzHTTPHandlers(f *testing.F) {
	p := startFuzzPrimary(f)
	for _, path := range []string{"/primary", "/standby", "/livez", "/healthz", "/status", "/metrics", "/resign"} {
		for _, method := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"} {
			f.Add(method, path, "", "")
		}
	}
	f.Add("POST", "/resign", "", "Bearer "+fuzzAPIToken)
	f.Add("POST", "/resign?now=1", `{"to":"r2"}`, "Bearer "+fuzzAPIToken)
	f.Add("POST", "/resign", "", "Bearer wrong")
	f.Add("POST", "/resign", "", "bearer "+fuzzAPIToken)
	f.Add("POST", "/resign", "", fuzzAPIToken)
	f.Add("POST", "/resign", "", "Bearer "+fuzzAPIToken+" ")
	f.Add("POST", "/resign", "", "Bearer ")
	f.Add("GET", "/status?pretty=1&x=%zz", "", "")
	f.Add("GET", "/status/", "", "")
	f.Add("GET", "//status", "", "")
	f.Add("GET", "/./primary", "", "")
	f.Add("GET", "/%70rimary", "", "")
	f.Add("GET", "/Primary", "", "")
	f.Add("GET", "/", "", "")
	f.Add("GET", "/debug/pprof/", "", "")
	f.Add("GET", "*", "", "")
	f.Add("get", "/status", "", "")
	f.Add("BREW", "/primary", "\x00\xff", "")
	f.Add("POST", "/status", strings.Repeat("{", 1<<12), "Bearer "+fuzzAPIToken)
	f.Add("GET", "/primary?"+strings.Repeat("a=b&", 1000), "", "")
	f.Fuzz(func(t *testing.T, method, target, body, auth string) {
		if !isToken(method) {
			return // the server answers 400 before any handler runs
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return // likewise
		}
		req := httptest.NewRequest(http.MethodGet, "/", strings.NewReader(body))
		req.Method, req.URL, req.RequestURI = method, u, target
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		p.sc.Handler().ServeHTTP(rec, req)
		code, path := rec.Code, u.Path
		getOrHead := method == http.MethodGet || method == http.MethodHead
		check := path == "/primary" || path == "/standby" || path == "/livez" || path == "/healthz"

		if code >= 500 && !(code == http.StatusServiceUnavailable && check && getOrHead) {
			t.Fatalf("%s %q: %d %q", method, target, code, rec.Body.String())
		}
		switch {
		case path != u.EscapedPath():
			// Escaped paths are routed by the mux's own rules; the 5xx
			// rule above still holds.
		case path == "/metrics":
			if !getOrHead {
				if code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
					t.Fatalf("%s %s: %d, Allow %q; want 405 with Allow: GET, HEAD", method, target, code, rec.Header().Get("Allow"))
				}
				return
			}
			if code != http.StatusOK {
				t.Fatalf("%s %s: %d", method, target, code)
			}
			if method == http.MethodHead && rec.Body.Len() != 0 {
				t.Fatalf("HEAD %s has a %d-byte body", target, rec.Body.Len())
			}
			if method == http.MethodGet && !strings.Contains(rec.Body.String(), "leaderd_role_transitions_total") {
				t.Fatalf("GET %s: body %q holds no leaderd metrics", target, rec.Body.String())
			}
		case check || path == "/status":
			if !getOrHead {
				if code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
					t.Fatalf("%s %s: %d, Allow %q; want 405 with Allow: GET, HEAD", method, target, code, rec.Header().Get("Allow"))
				}
				return
			}
			if code != http.StatusOK && !(check && code == http.StatusServiceUnavailable) {
				t.Fatalf("%s %s: %d", method, target, code)
			}
			if method == http.MethodHead && rec.Body.Len() != 0 {
				t.Fatalf("HEAD %s has a %d-byte body", target, rec.Body.Len())
			}
			if method == http.MethodGet {
				var v struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.ID != "me" {
					t.Fatalf("GET %s: body %q is not the replica's JSON (%v)", target, rec.Body.String(), err)
				}
			}
		case path == "/resign":
			switch {
			case method != http.MethodPost:
				if code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" {
					t.Fatalf("%s /resign: %d, Allow %q; want 405 with Allow: POST", method, code, rec.Header().Get("Allow"))
				}
			case auth == "Bearer "+fuzzAPIToken:
				if code != http.StatusAccepted {
					t.Fatalf("POST /resign with the token, as primary: %d %q; want 202", code, rec.Body.String())
				}
				p.promote(t) // the next input finds a primary again
			case code != http.StatusForbidden:
				t.Fatalf("POST /resign with Authorization %q: %d; want 403", auth, code)
			}
		case code >= 200 && code < 300:
			t.Fatalf("%s %q: %d, a path outside the API answered", method, target, code)
		}
		_, _ = io.Copy(io.Discard, rec.Result().Body)
	})
}
