//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// SampleInterval is how often the Monitor asks the three sidecars' /primary.
const SampleInterval = 50 * time.Millisecond

// sampleTimeout bounds one /primary request of the Monitor: a paused or
// cut-off sidecar must not stall the sampling for long.
const sampleTimeout = 500 * time.Millisecond

// Sample is one round of /primary answers, asked of the three sidecars in
// parallel: Codes[i] is replica i+1's status, 0 when it did not answer.
type Sample struct {
	At    time.Time // when the round was sent
	Done  time.Time // when its last answer came
	Codes [3]int
}

// Primaries are the replicas that answered 200.
func (s Sample) Primaries() []int {
	var p []int
	for i, c := range s.Codes {
		if c == http.StatusOK {
			p = append(p, i)
		}
	}
	return p
}

func (s Sample) String() string {
	var parts []string
	for i, c := range s.Codes {
		code := fmt.Sprint(c)
		if c == 0 {
			code = "-"
		}
		parts = append(parts, fmt.Sprintf("app%d:%s", i+1, code))
	}
	return fmt.Sprintf("%s %s", s.At.Format("15:04:05.000"), strings.Join(parts, " "))
}

// Monitor samples every sidecar's /primary every SampleInterval until its
// context ends, and keeps every sample.
type Monitor struct {
	stack  *Stack
	client *http.Client
	mu     sync.Mutex
	all    []Sample
	done   chan struct{}
}

// StartMonitor starts sampling until ctx ends.
func (s *Stack) StartMonitor(ctx context.Context) *Monitor {
	m := &Monitor{stack: s, client: &http.Client{Timeout: sampleTimeout}, done: make(chan struct{})}
	go m.run(ctx)
	return m
}

func (m *Monitor) run(ctx context.Context) {
	defer close(m.done)
	tick := time.NewTicker(SampleInterval)
	defer tick.Stop()
	for {
		smp := Sample{At: time.Now()}
		var wg sync.WaitGroup
		for i, r := range m.stack.Replicas {
			wg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, sampleTimeout)
				defer cancel()
				req, err := http.NewRequestWithContext(rctx, http.MethodGet, r.APIURL+"/primary", nil)
				if err != nil {
					return
				}
				resp, err := m.client.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				smp.Codes[i] = resp.StatusCode
			})
		}
		wg.Wait()
		smp.Done = time.Now()
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		m.all = append(m.all, smp)
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Wait waits (bounded) for the sampling goroutine once its context has
// ended.
func (m *Monitor) Wait() {
	select {
	case <-m.done:
	case <-time.After(2 * sampleTimeout):
	}
}

// Latest is the newest sample (zero if none yet).
func (m *Monitor) Latest() Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.all) == 0 {
		return Sample{}
	}
	return m.all[len(m.all)-1]
}

// Between returns the samples sent in [from, to].
func (m *Monitor) Between(from, to time.Time) []Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Sample
	for _, s := range m.all {
		if !s.At.Before(from) && !s.At.After(to) {
			out = append(out, s)
		}
	}
	return out
}

// All returns every sample so far.
func (m *Monitor) All() []Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Sample{}, m.all...)
}

// TwoPrimaries returns the samples in which more than one sidecar answered
// /primary 200.
func TwoPrimaries(samples []Sample) []Sample {
	var bad []Sample
	for _, s := range samples {
		if len(s.Primaries()) > 1 {
			bad = append(bad, s)
		}
	}
	return bad
}

// PrimaryFraction is the share of the time covered by samples in which
// exactly one sidecar answered 200: each sample stands for the time until
// the next one.
func PrimaryFraction(samples []Sample) float64 {
	if len(samples) < 2 {
		return 0
	}
	var with, total time.Duration
	for i := 0; i+1 < len(samples); i++ {
		d := samples[i+1].At.Sub(samples[i].At)
		total += d
		if len(samples[i].Primaries()) == 1 {
			with += d
		}
	}
	return float64(with) / float64(total)
}

// NoPrimaryGap returns the longest stretch without exactly one primary.
func NoPrimaryGap(samples []Sample) time.Duration {
	var longest time.Duration
	var since time.Time
	for _, s := range samples {
		if len(s.Primaries()) == 1 {
			if !since.IsZero() {
				longest = max(longest, s.At.Sub(since))
				since = time.Time{}
			}
		} else if since.IsZero() {
			since = s.At
		}
	}
	if !since.IsZero() && len(samples) > 0 {
		longest = max(longest, samples[len(samples)-1].At.Sub(since))
	}
	return longest
}

// CurrentPrimary is the replica the latest sample shows as the only
// primary, if any.
func (m *Monitor) CurrentPrimary() (Replica, bool) {
	p := m.Latest().Primaries()
	if len(p) != 1 {
		return Replica{}, false
	}
	return m.stack.Replicas[p[0]], true
}
