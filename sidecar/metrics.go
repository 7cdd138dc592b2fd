package sidecar

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// metrics are the sidecar's Prometheus metrics, on a registry of its own so
// that several sidecars in one process (tests, embedding) do not collide.
// Every series, the Go runtime's and the process's included, carries the
// constant labels election and id: one leaderd process serves one replica
// of one election, so its runtime series are that replica's too, and one
// selector ({election="db"}) picks out all of them.
type metrics struct {
	registry          *prometheus.Registry
	reg               prometheus.Registerer // registry, adding the constant labels
	transitions       *prometheus.CounterVec
	hookDuration      *prometheus.HistogramVec
	keepaliveFailures prometheus.Counter
	yields            *prometheus.CounterVec
}

// Kinds of yield to a higher priority, the label of leaderd_yields_total.
const (
	yieldAtWin    = "win"      // a win given up without promoting
	yieldFailback = "failback" // a switchover asked for by --failback
)

func newMetrics(st *state, electionName, id string) *metrics {
	registry := prometheus.NewRegistry()
	m := &metrics{
		registry: registry,
		reg:      prometheus.WrapRegistererWith(prometheus.Labels{"election": electionName, "id": id}, registry),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leaderd_role_transitions_total",
			Help: "Changes of role, by reason.",
		}, []string{"reason"}),
		hookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leaderd_hook_duration_seconds",
			Help:    "How long hooks ran, by hook and result (ok, failed, timeout, canceled).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"hook", "result"}),
		keepaliveFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leaderd_keepalive_failures_total",
			Help: "Lease renewals that failed.",
		}),
		yields: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leaderd_yields_total",
			Help: "Times the role was given to a higher-priority replica: a win given up (win), a failback switchover asked for (failback).",
		}, []string{"kind"}),
	}
	gauge := func(name, help string, value func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value)
	}
	m.reg.MustRegister(
		m.transitions, m.hookDuration, m.keepaliveFailures, m.yields,
		gauge("leaderd_is_primary", "1 while primary and inside the safe deadline (as GET /primary).", func() float64 {
			return boolFloat(st.servingPrimary(time.Now()))
		}),
		gauge("leaderd_lease_seconds_to_deadline", "Seconds until the lease's safe deadline; 0 without a lease.", func() float64 {
			return st.secondsToSafeDeadline(time.Now())
		}),
		gauge("leaderd_etcd_reachable", "1 when etcd answered the last request.", func() float64 {
			return boolFloat(st.etcdOK())
		}),
		gauge("leaderd_app_healthy", "1 when the local app counts as healthy (always, without a health check).", func() float64 {
			return boolFloat(st.appHealthy())
		}),
		gauge("leaderd_degraded", "1 while a failed demote is retried (/status degraded, /healthz 503).", func() float64 {
			return boolFloat(st.degraded())
		}),
		gauge("leaderd_fencing_token", "The fencing token of the tenure this replica holds; 0 while it holds none.", func() float64 {
			return float64(st.heldToken())
		}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Reasons exist from the start, so rates work before the first change.
	for _, r := range []role.Reason{role.ReasonElected, role.ReasonShutdown, role.ReasonLeaseLost, role.ReasonEtcdUnreachable, role.ReasonKeyDeleted, role.ReasonPromoteFailed, role.ReasonUnhealthy, role.ReasonResigned, role.ReasonSwitchover} {
		m.transitions.WithLabelValues(string(r))
	}
	m.yields.WithLabelValues(yieldAtWin)
	m.yields.WithLabelValues(yieldFailback)
	return m
}

// exportPriority exports --priority as leaderd_priority.
func (m *metrics) exportPriority(priority int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "leaderd_priority",
		Help: "This replica's --priority.",
	}, func() float64 { return float64(priority) }))
}

// expectHooks creates the failed and timeout series of these hooks at 0,
// so that an alert's increase() sees the first failure: a series born at
// 1 has no earlier sample to rise from.
func (m *metrics) expectHooks(names ...string) {
	for _, h := range names {
		for _, result := range []string{"failed", "timeout"} {
			m.hookDuration.WithLabelValues(h, result)
		}
	}
}

// countLogDrops exports dropped, the log sink's count of dropped lines, as
// leaderd_log_lines_dropped_total. A nil dropped exports nothing.
func (m *metrics) countLogDrops(dropped func() uint64) {
	if dropped == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "leaderd_log_lines_dropped_total",
		Help: "Log lines dropped because stderr did not take them (stalled or closed).",
	}, func() float64 { return float64(dropped()) }))
}

func (m *metrics) observeHook(r hooks.Result) {
	result := "ok"
	switch {
	case r.TimedOut:
		result = "timeout"
	case r.Canceled:
		result = "canceled"
	case r.Err != nil:
		result = "failed"
	}
	m.hookDuration.WithLabelValues(r.Hook, result).Observe(r.Duration.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
