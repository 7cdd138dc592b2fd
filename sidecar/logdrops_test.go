package sidecar

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func scrapeMetrics(t *testing.T, m *metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	return rec.Body.String()
}

// TestMetricsCountLogDrops: the binary's count of dropped log lines is
// exported as a counter; without one the metric is absent.
func TestMetricsCountLogDrops(t *testing.T) {
	var dropped uint64 = 7
	m := newState("e", "me").metrics
	m.countLogDrops(func() uint64 { return dropped })
	assertMetric(t, scrapeMetrics(t, m), `leaderd_log_lines_dropped_total{election="e",id="me"} 7`)
	dropped = 9
	assertMetric(t, scrapeMetrics(t, m), `leaderd_log_lines_dropped_total{election="e",id="me"} 9`)
	if body := scrapeMetrics(t, m); !strings.Contains(body, "# TYPE leaderd_log_lines_dropped_total counter") {
		t.Errorf("leaderd_log_lines_dropped_total is not a counter")
	}

	m = newState("e", "me").metrics
	m.countLogDrops(nil)
	if body := scrapeMetrics(t, m); strings.Contains(body, "leaderd_log_lines_dropped_total") {
		t.Errorf("leaderd_log_lines_dropped_total exported without a count")
	}
}
