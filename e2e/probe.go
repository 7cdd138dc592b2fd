//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/sidecar"
)

// RequestTimeout bounds one HTTP request to a sidecar or an app: a paused
// or cut-off container must not stall a poll.
const RequestTimeout = 2 * time.Second

// PollInterval is how often WaitFor checks its condition.
const PollInterval = 200 * time.Millisecond

var httpClient = &http.Client{Timeout: RequestTimeout}

// AppRole is the demo app's GET /role (examples/app).
type AppRole struct {
	Role     string `json:"role"`
	Token    int64  `json:"token"`
	MaxSeen  int64  `json:"max_seen"`
	Promotes int    `json:"promotes"`
	Demotes  int    `json:"demotes"`
}

// AppEntry is one write in the demo app's GET /log.
type AppEntry struct {
	ID    string    `json:"id"`
	Token int64     `json:"token"`
	Data  string    `json:"data"`
	At    time.Time `json:"at"`
}

// Status is r's sidecar GET /status.
func (s *Stack) Status(ctx context.Context, r Replica) (sidecar.Status, error) {
	var st sidecar.Status
	_, err := getJSON(ctx, r.APIURL+"/status", &st)
	return st, err
}

// IsPrimary asks r's sidecar GET /primary: true on 200, false on 503, an
// error when it does not answer (stopped, paused, cut off) or answers
// anything else.
func (s *Stack) IsPrimary(ctx context.Context, r Replica) (bool, error) {
	code, err := get(ctx, r.APIURL+"/primary")
	switch {
	case err != nil:
		return false, err
	case code == http.StatusOK:
		return true, nil
	case code == http.StatusServiceUnavailable:
		return false, nil
	}
	return false, fmt.Errorf("%s/primary: unexpected status %d", r.APIURL, code)
}

// Roles polls every sidecar's /primary once: the replicas answering 200,
// and those that did not answer (their errors).
func (s *Stack) Roles(ctx context.Context) (primaries []Replica, silent map[string]error) {
	silent = map[string]error{}
	for _, r := range s.Replicas {
		ok, err := s.IsPrimary(ctx, r)
		if err != nil {
			silent[r.ID] = err
		} else if ok {
			primaries = append(primaries, r)
		}
	}
	return primaries, silent
}

// AppState is r's app GET /role.
func (s *Stack) AppState(ctx context.Context, r Replica) (AppRole, error) {
	var role AppRole
	_, err := getJSON(ctx, r.AppURL+"/role", &role)
	return role, err
}

// AppLog is r's app GET /log: the writes it holds.
func (s *Stack) AppLog(ctx context.Context, r Replica) ([]AppEntry, error) {
	var entries []AppEntry
	_, err := getJSON(ctx, r.AppURL+"/log", &entries)
	return entries, err
}

// Write posts data as write id to r's app. It returns the status (200
// written; 409 refused by fencing; 503 not primary or no majority) and the
// body; err only when there was no answer (the outcome is then unknown).
func (s *Stack) Write(ctx context.Context, r Replica, id, data string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*RequestTimeout) // a write waits for its peers
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.AppURL+"/write?id="+id, strings.NewReader(data))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// WaitFor polls cond every PollInterval until it reports done, and fails
// the test if that takes longer than timeout, with cond's last
// observation. Each call of cond gets a context bounded by RequestTimeout
// times three. It returns how long it waited.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (done bool, observed string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var observed string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*RequestTimeout)
		var done bool
		done, observed = cond(ctx)
		cancel()
		if done {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last seen: %s", timeout, what, observed)
		}
		time.Sleep(PollInterval)
	}
}

// WaitForOnePrimary waits until exactly one sidecar answers /primary 200,
// the others answer 503, and all three /status name it as the leader, and
// until that has held without a change for settle (0: at once).
func (s *Stack) WaitForOnePrimary(t testing.TB, timeout, settle time.Duration) Replica {
	t.Helper()
	var primary Replica
	var since time.Time // when the current primary was first seen
	defer func(start time.Time) {
		t.Logf("one primary (%s) after waiting %s", primary.ID, time.Since(start).Round(time.Millisecond))
	}(time.Now())
	WaitFor(t, timeout, fmt.Sprintf("exactly one primary, stable for %s", settle), func(ctx context.Context) (bool, string) {
		p, observed := s.onePrimary(ctx)
		if p == nil {
			since = time.Time{}
			return false, observed
		}
		if since.IsZero() || *p != primary {
			primary, since = *p, time.Now()
		}
		return time.Since(since) >= settle, fmt.Sprintf("%s primary for %s", primary.ID, time.Since(since).Round(time.Millisecond))
	})
	return primary
}

// onePrimary returns the only primary if all three sidecars agree on it,
// else nil and what it saw.
func (s *Stack) onePrimary(ctx context.Context) (*Replica, string) {
	primaries, silent := s.Roles(ctx)
	if len(silent) > 0 || len(primaries) != 1 {
		return nil, fmt.Sprintf("primaries %v, not answering %v", ids(primaries), silent)
	}
	p := primaries[0]
	for _, r := range s.Replicas {
		st, err := s.Status(ctx, r)
		if err != nil {
			return nil, err.Error()
		}
		if st.Leader == nil || st.Leader.ID != p.ID {
			return nil, fmt.Sprintf("%s is primary but %s sees leader %+v", p.ID, r.ID, st.Leader)
		}
	}
	return &p, ""
}

func ids(rs []Replica) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return s
}

// get returns the status of GET url.
func get(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// getJSON decodes the body of GET url into v, whatever the status (the
// status is returned).
func getJSON(ctx context.Context, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: %s: %w", url, resp.Status, err)
	}
	return resp.StatusCode, nil
}
