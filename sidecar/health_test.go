package sidecar

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/role"
)

// fakeHealth is the app's health, set by the test. Like health.Checker, its
// channel holds only the latest change.
type fakeHealth struct {
	mu      sync.Mutex
	healthy bool
	ch      chan bool
}

func newFakeHealth(healthy bool) *fakeHealth {
	return &fakeHealth{healthy: healthy, ch: make(chan bool, 1)}
}

func (f *fakeHealth) Healthy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.healthy
}

func (f *fakeHealth) Changes() <-chan bool { return f.ch }

func (f *fakeHealth) set(h bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthy = h
	select {
	case <-f.ch:
	default:
	}
	f.ch <- h
}

func count(log []string, prefix string) int {
	n := 0
	for _, l := range log {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func TestMachineUnhealthyAtStartDoesNotCampaign(t *testing.T) {
	h := newFakeHealth(false)
	m := startMachine(t, func(m *machine) { m.health = h })
	m.calls.waitFor(t, "demote startup", 1)
	waitUntil(t, "phase unhealthy", func() bool { return m.sc.Status().Phase == role.PhaseUnhealthy })
	// It holds a lease (its member record lives on it) but never campaigns.
	if log, _ := m.calls.snapshot(); slices.Contains(log, "campaign") {
		t.Fatalf("an unhealthy replica campaigned:\n  %s", strings.Join(log, "\n  "))
	}
	if code := httpCode(m.sc, "/standby"); code != http.StatusServiceUnavailable {
		t.Errorf("/standby = %d for an unhealthy standby", code)
	}
	if st := m.sc.Status(); st.AppHealthy || !st.Healthy {
		t.Errorf("status app_healthy=%v healthy=%v", st.AppHealthy, st.Healthy)
	}
	h.set(true)
	m.calls.waitFor(t, "campaign", 1)
	waitUntil(t, "/standby 200", func() bool { return httpCode(m.sc, "/standby") == http.StatusOK })
}

func TestMachineUnhealthyStandbyWithdraws(t *testing.T) {
	h := newFakeHealth(true)
	m := startMachine(t, func(m *machine) { m.health = h })
	m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	h.set(false)
	// The candidate key goes with its lease; a fresh lease keeps the member
	// record, and no campaign runs on it while unhealthy.
	m.calls.waitFor(t, "close", 1)
	m.candidacy(t)
	waitUntil(t, "phase unhealthy", func() bool { return m.sc.Status().Phase == role.PhaseUnhealthy })
	log, _ := m.calls.snapshot()
	if count(log, "campaign") != 1 || count(log, "promote") != 0 {
		t.Fatalf("campaigned again while unhealthy:\n  %s", strings.Join(log, "\n  "))
	}
	h.set(true)
	log = m.calls.waitFor(t, "campaign", 2)
	after(t, log, "campaign", "close", "grant", "campaign")
}

func TestMachineUnhealthyPrimaryStepsDown(t *testing.T) {
	h := newFakeHealth(true)
	m := startMachine(t, func(m *machine) { m.health = h })
	m.win(t, m.candidacy(t), 6)
	waitUntil(t, "primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	h.set(false)
	log := m.calls.waitFor(t, "close", 1)
	after(t, log, "promote elected", "demote unhealthy token=6", "resign", "close")
	m.candidacy(t)
	waitUntil(t, "phase unhealthy", func() bool { return m.sc.Status().Phase == role.PhaseUnhealthy })
	if st := m.sc.Status(); st.Role != role.Standby || st.LastTransition.Reason != role.ReasonUnhealthy {
		t.Fatalf("status %+v", st)
	}
	// Healthy again: it campaigns again, at the back of the queue.
	h.set(true)
	m.calls.waitFor(t, "campaign", 2)
}

// A healthy blip that does not cross the thresholds is not a change at
// all: health.Checker sends only transitions. Here a change to healthy
// while healthy must not end the tenure.
func TestMachineHealthyChangeKeepsTenure(t *testing.T) {
	h := newFakeHealth(true)
	m := startMachine(t, func(m *machine) { m.health = h })
	m.win(t, m.candidacy(t), 2)
	waitUntil(t, "primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	h.set(true)
	// Nothing must happen: watch a bounded window for a demote.
	window := time.NewTimer(200 * time.Millisecond)
	defer window.Stop()
	for {
		log, change := m.calls.snapshot()
		if count(log, "demote") > 1 {
			t.Fatalf("stepped down on a healthy change:\n  %s", strings.Join(log, "\n  "))
		}
		select {
		case <-change:
		case <-window.C:
			return
		}
	}
}

// withHealthFile checks the app's health by reading a file: "ok" is
// healthy. Short intervals keep the test quick.
func withHealthFile(path string) replicaOption {
	return func(c *Config) {
		c.Health.Command = "grep -qx ok " + path
		c.Health.Interval = 100 * time.Millisecond
		c.Health.Timeout = 100 * time.Millisecond
		c.Health.Failures = 2
		c.Health.Successes = 1
	}
}

func writeHealth(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUnhealthyPrimaryHandsOver(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	files := map[string]string{}
	for _, id := range []string{"a", "b"} {
		files[id] = filepath.Join(dir, id)
		writeHealth(t, files[id], "ok")
		c.start(id, withHealthFile(files[id]))
	}
	first := c.tl.waitFor(t, "a first promote", match(0, event{Hook: "promote", Phase: "end"}))
	other := map[string]string{"a": "b", "b": "a"}[first.ID]
	waitUntil(t, other+" campaigning", func() bool { return c.replica(other).sc.Status().Lease != nil })

	writeHealth(t, files[first.ID], "sick")
	demote := c.tl.waitFor(t, "the unhealthy primary's demote", match(0, event{ID: first.ID, Hook: "demote", Phase: "end", Reason: role.ReasonUnhealthy}))
	next := c.tl.waitFor(t, "the healthy replica's promote", match(0, event{ID: other, Hook: "promote", Phase: "start"}))
	if !demote.At.Before(next.At) {
		t.Fatalf("promote at %s before the unhealthy primary's demote ended at %s", next.At, demote.At)
	}
	st := c.replica(first.ID).sc.Status()
	if st.AppHealthy || st.HealthCheck == nil || st.HealthCheck.OK {
		t.Errorf("the sick replica's status: app_healthy=%v check=%+v", st.AppHealthy, st.HealthCheck)
	}
	// Unhealthy, it stays out of the election: no candidate key, though its
	// lease (and member record) stays.
	waitUntil(t, first.ID+" withdrawn", func() bool {
		st := c.replica(first.ID).sc.Status()
		return st.Phase == role.PhaseUnhealthy && st.Lease != nil && !slices.Contains(c.replica(other).sc.state.candidatesSnapshot(), first.ID)
	})
	// Healthy again, it rejoins as a standby; the primary stays.
	c.tl.waitFor(t, "the new primary's promote end", match(0, event{ID: other, Hook: "promote", Phase: "end"}))
	evs, _ := c.tl.snapshot()
	writeHealth(t, files[first.ID], "ok")
	waitUntil(t, first.ID+" campaigning again", func() bool {
		st := c.replica(first.ID).sc.Status()
		return st.Phase == role.PhaseCampaigning && st.Lease != nil && st.AppHealthy
	})
	all, _ := c.tl.snapshot()
	for _, e := range all[len(evs):] {
		if e.Hook == "promote" {
			t.Fatalf("a recovered standby changed the primary:\n%s", formatEvents(all))
		}
	}
	assertNoOverlap(t, all)
}

// A health check that fails every other time never reaches 2 failures in
// a row: with --health-failures 2 the primary keeps its role however long
// the app flaps.
func TestFlappingHealthDoesNotFlapTheRole(t *testing.T) {
	c := newCluster(t)
	counter := filepath.Join(t.TempDir(), "n")
	writeHealth(t, counter, "0")
	a := c.start("a", func(cfg *Config) {
		cfg.Health.Command = fmt.Sprintf(`n=$(cat %[1]s); echo $((n+1)) > %[1]s; [ $((n %% 2)) -eq 0 ]`, counter)
		// Generous for a shell check on a loaded machine (50ms timed out):
		// a timed-out pass next to a real failure is two failures in a row.
		cfg.Health.Interval = 250 * time.Millisecond
		cfg.Health.Timeout = 250 * time.Millisecond
		cfg.Health.Failures = 2
		cfg.Health.Successes = 1
	})
	c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	start := a.sc.Status().HealthCheck.Checks
	// Watch 15 more checks: any demote would be a role flap.
	waitUntil(t, "15 more checks", func() bool { return a.sc.Status().HealthCheck.Checks >= start+15 })
	evs, _ := c.tl.snapshot()
	if i := match(0, event{ID: "a", Hook: "demote", Reason: role.ReasonUnhealthy})(evs); i >= 0 {
		t.Fatalf("a flapping app made the primary step down:\n%s", formatEvents(evs))
	}
	if st := a.sc.Status(); st.Phase != role.PhasePrimary || !st.AppHealthy {
		t.Fatalf("status %s, app healthy %v", st.Phase, st.AppHealthy)
	}
}
