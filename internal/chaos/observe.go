package chaos

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
)

// SampleInterval is how often every replica's /primary is probed.
const SampleInterval = 20 * time.Millisecond

// probeTimeout bounds one probe; a frozen replica answers nothing.
const probeTimeout = 300 * time.Millisecond

// Host stalls: the campaign's clock checks itself every stallTick; a tick
// later than stallThreshold means the whole machine (a VM's host, a
// starved CPU) stopped every process, leaderd's included, as a SIGSTOP of
// all of them would.
const (
	stallTick      = 10 * time.Millisecond
	stallThreshold = 300 * time.Millisecond
)

// watchStalls records host stalls as windows of Kind "stall" on every
// replica ("*"), widened by grace (what a thawed replica does late).
func (o *observer) watchStalls(ctx context.Context, grace time.Duration) {
	tick := time.NewTicker(stallTick)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if gap := now.Sub(last); gap > stallThreshold {
				o.mu.Lock()
				o.stalls = append(o.stalls, Window{Replica: "*", Kind: "stall", Start: last, End: now.Add(grace)})
				o.mu.Unlock()
			}
			last = now
		}
	}
}

// hostStalls are the stalls seen so far.
func (o *observer) hostStalls() []Window {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Window(nil), o.stalls...)
}

// observer probes /primary on every replica and keeps a writer writing to
// the store through whichever replica answers 200.
type observer struct {
	w      *World
	client *http.Client

	mu       sync.Mutex
	samples  []Sample
	last     map[string]Sample // the latest answered probe per replica
	inflight map[string]bool
	acks     []Ack
	value    int64
	stalls   []Window
}

func newObserver(w *World) *observer {
	return &observer{
		w: w,
		client: &http.Client{Timeout: probeTimeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     10 * time.Second,
		}},
		last:     map[string]Sample{},
		inflight: map[string]bool{},
	}
}

// run probes until ctx ends; wg tracks the probe goroutines.
func (o *observer) run(ctx context.Context, wg *sync.WaitGroup) {
	tick := time.NewTicker(SampleInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, n := range o.w.nodes {
			rep := n.replica()
			if rep == nil {
				continue
			}
			o.mu.Lock()
			busy := o.inflight[n.id]
			o.inflight[n.id] = true
			o.mu.Unlock()
			if busy {
				continue // a frozen replica: do not pile probes up
			}
			wg.Add(1)
			go func(id, addr string) {
				defer wg.Done()
				o.probe(ctx, id, addr)
			}(n.id, rep.APIAddr)
		}
	}
}

func (o *observer) probe(ctx context.Context, id, addr string) {
	s := Sample{Replica: id, Sent: time.Now()}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/primary", nil)
	if resp, err := o.client.Do(req); err == nil {
		resp.Body.Close()
		s.Code = resp.StatusCode
	}
	s.Received = time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inflight[id] = false
	if ctx.Err() != nil && s.Code == 0 {
		return // cut short by the end of the run, not an answer
	}
	o.samples = append(o.samples, s)
	o.last[id] = s
}

// current is n's latest answered probe, if n runs and the probe was sent
// to the process running now (not to one that has exited since). Callers
// hold o.mu.
func (o *observer) current(n *node) (Sample, bool) {
	started := n.since()
	if started.IsZero() || n.replica() == nil {
		return Sample{}, false
	}
	s, ok := o.last[n.id]
	if !ok || s.Sent.Before(started) {
		return Sample{}, false
	}
	return s, true
}

// primary is the running replica whose latest probe answered 200, if
// exactly one.
func (o *observer) primary() (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	found := ""
	for _, n := range o.w.nodes {
		if s, ok := o.current(n); ok && s.Code == http.StatusOK {
			if found != "" {
				return "", false
			}
			found = n.id
		}
	}
	return found, found != ""
}

// serving are the running replicas whose latest probe answered 200.
func (o *observer) serving() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, n := range o.w.nodes {
		if s, ok := o.current(n); ok && s.Code == http.StatusOK {
			out = append(out, n.id)
		}
	}
	return out
}

// steady reports whether, counting only probes sent after since, exactly
// one running replica answers /primary 200 and every other running one
// has answered something else.
func (o *observer) steady(since time.Time) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	primary := ""
	for _, n := range o.w.nodes {
		if n.replica() == nil {
			continue
		}
		s, ok := o.current(n)
		if !ok || s.Sent.Before(since) || s.Code == 0 {
			return "", false
		}
		if s.Code == http.StatusOK {
			if primary != "" {
				return "", false
			}
			primary = n.id
		}
	}
	return primary, primary != ""
}

// waitSteady waits until steady, bounded by max; it returns when that
// first held, or the zero time.
func (o *observer) waitSteady(ctx context.Context, since time.Time, max time.Duration) time.Time {
	return poll(ctx, max, func() (time.Time, bool) {
		_, ok := o.steady(since)
		return time.Now(), ok
	})
}

// poll calls cond every half sample interval until it holds, bounded by
// max and ctx; it returns the time cond gave, or the zero time.
func poll(ctx context.Context, max time.Duration, cond func() (time.Time, bool)) time.Time {
	deadline := time.Now().Add(max)
	tick := time.NewTicker(SampleInterval / 2)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if at, ok := cond(); ok {
			return at
		}
		select {
		case <-ctx.Done():
			return time.Time{}
		case <-tick.C:
		}
	}
	return time.Time{}
}

// appWriteEvery paces each primary app's own writes; the routed writes go
// every SampleInterval.
const appWriteEvery = 100 * time.Millisecond

// write keeps two kinds of writes going until ctx ends, each stamped with
// the fencing token of the app that sends it (the token its promote hook
// gave it):
//   - routed ("lb"): through every replica answering /primary 200, as a
//     load balancer checking /primary would send them;
//   - the apps' own ("app"): from every app that is primary, whatever its
//     leaderd is doing. A frozen or killed leaderd's app keeps writing with
//     its old token: the store's fence is all that stops it.
func (o *observer) write(ctx context.Context) {
	tick := time.NewTicker(SampleInterval)
	defer tick.Stop()
	lastApp := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		apps := o.w.store.primaryApps()
		for _, id := range o.serving() {
			if token, ok := apps[id]; ok {
				o.post(ctx, id, "lb", token)
			}
		}
		if time.Since(lastApp) >= appWriteEvery {
			lastApp = time.Now()
			for id, token := range apps {
				o.post(ctx, id, "app", token)
			}
		}
	}
}

// post sends one write and records the ack.
func (o *observer) post(ctx context.Context, id, via string, token int64) {
	o.mu.Lock()
	o.value++
	v := o.value
	o.mu.Unlock()
	url := fmt.Sprintf("%s/write?token=%d&value=%d&id=%s&via=%s", o.w.store.URL(), token, v, id, via)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	resp, err := o.client.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		o.mu.Lock()
		o.acks = append(o.acks, Ack{At: time.Now(), Replica: id, Via: via, Token: token, Value: v})
		o.mu.Unlock()
	}
}

// sortedSamples returns the samples ordered by send time.
func (o *observer) sortedSamples() []Sample {
	o.mu.Lock()
	out := append([]Sample(nil), o.samples...)
	o.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Sent.Before(out[j].Sent) })
	return out
}

func (o *observer) acked() []Ack {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Ack(nil), o.acks...)
}

// lastSample is the latest answered probe of a replica.
func (o *observer) lastSample(id string) (Sample, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, ok := o.last[id]
	return s, ok
}

// waitNotServing waits until replica id answers /primary with anything
// but 200 (or stops answering), bounded by max; it returns when, or the
// zero time.
func (o *observer) waitNotServing(ctx context.Context, id string, max time.Duration) time.Time {
	start := time.Now()
	return poll(ctx, max, func() (time.Time, bool) {
		if s, ok := o.lastSample(id); ok && s.Sent.After(start) && s.Code != http.StatusOK {
			return s.Sent, true
		}
		return time.Now(), o.w.byID[id].replica() == nil
	})
}

// servedSince reports whether replica id answered every probe sent since
// t with 200 (and at least one).
func (o *observer) servedSince(id string, t time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := false
	for i := len(o.samples) - 1; i >= 0; i-- {
		s := o.samples[i]
		if s.Received.Before(t) {
			break // appended in completion order: nothing older was sent after t
		}
		if s.Sent.Before(t) || s.Replica != id {
			continue
		}
		if s.Code != http.StatusOK {
			return false
		}
		seen = true
	}
	return seen
}
