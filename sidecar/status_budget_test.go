package sidecar

import (
	"encoding/json"
	"net/http"
	"testing"
)

// GET /status carries the timing budget, snake_case in seconds, with the
// same figures as Config.Budget (here the defaults: TTL 15s, demote 5s).
func TestHTTPStatusShowsTheBudget(t *testing.T) {
	m := startMachine(t, nil)
	var body struct {
		Budget map[string]float64 `json:"budget"`
	}
	if err := json.Unmarshal(serve(m.sc, http.MethodGet, "/status").Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]float64{
		"ttl_seconds": 15, "requested_ttl_seconds": 15, "renew_interval_seconds": 3.75, "margin_seconds": 1.5,
		"step_down_lead_seconds": 6.5, "safe_deadline_seconds": 8.5, "crash_failover_seconds": 16.575,
		"graceful_hand_off_seconds": 5.1, "overlap_while_running_seconds": 0, "frozen_after_thaw_seconds": 5,
	} {
		if got, ok := body.Budget[key]; !ok || got != want {
			t.Errorf("budget.%s = %v (present %v), want %v; budget %v", key, got, ok, want, body.Budget)
		}
	}
	if len(body.Budget) != len(m.sc.cfg.Budget(0).fields()) {
		t.Errorf("budget has %d fields, want %d: %v", len(body.Budget), len(m.sc.cfg.Budget(0).fields()), body.Budget)
	}
}
