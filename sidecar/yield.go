package sidecar

import (
	"time"
)

// The yield back-off: once this replica has given the role up to a
// higher-priority target (a yield at a win, or a failback), it does not do
// so again for that target until the target has served a while, or a
// back-off has passed that doubles on repeats. A target that fails its
// promote, steps down or flaps so never makes the replicas below it cycle
// through the leader key. docs/design.md, 8.1, explains it.
const (
	yieldBackOffMin = 5 * time.Second
	yieldBackOffMax = 5 * time.Minute
	// yieldQuiet: a target not yielded to for this long starts afresh.
	yieldQuiet = 2 * yieldBackOffMax
	// yieldTargetsMax bounds the targets remembered: a replica yields to
	// few, and a stale one is forgotten first.
	yieldTargetsMax = 16
)

// yieldTarget is what is remembered of one target.
type yieldTarget struct {
	count     int       // yields in a row that the target did not serve after
	last      time.Time // the last yield to it
	until     time.Time // no yield to it before this, unless it served
	leadSince time.Time // it leads since, as the leader watch saw; zero: it does not
	served    bool      // it led for servedFor since the last yield
}

// yieldBackOff is the per-target state. Not safe for concurrent use: the
// state owns it, under its lock.
type yieldBackOff struct {
	// servedFor is how long a target must lead to count as having served:
	// longer than any promote (its timeout) plus a TTL.
	servedFor time.Duration
	targets   map[string]*yieldTarget
}

// settle notes a target that has led for servedFor by now.
func (y *yieldBackOff) settle(t *yieldTarget, now time.Time) {
	if !t.leadSince.IsZero() && now.Sub(t.leadSince) >= y.servedFor {
		t.served = true
	}
}

// allowed reports whether this replica may yield to id now.
func (y *yieldBackOff) allowed(id string, now time.Time) bool {
	t := y.targets[id]
	if t == nil {
		return true
	}
	y.settle(t, now)
	return t.served || !now.Before(t.until)
}

// yielded records a yield to id and returns the back-off it arms: the
// next one doubles it unless the target serves a while first, or nothing
// is yielded to it for yieldQuiet.
func (y *yieldBackOff) yielded(id string, now time.Time) time.Duration {
	if y.targets == nil {
		y.targets = map[string]*yieldTarget{}
	}
	y.prune(now, id)
	t := y.targets[id]
	if t == nil {
		t = &yieldTarget{}
		y.targets[id] = t
	}
	y.settle(t, now)
	if t.served || now.Sub(t.last) > yieldQuiet {
		t.count = 0
	}
	t.count++
	d := yieldBackOffMax
	if t.count <= 10 { // 5s x 2^9 is past the cap already
		d = min(yieldBackOffMin<<(t.count-1), yieldBackOffMax)
	}
	t.last, t.until, t.served, t.leadSince = now, now.Add(d), false, time.Time{}
	return d
}

// observeLeader notes who leads now ("" for no one), from the leader
// watch.
func (y *yieldBackOff) observeLeader(id string, now time.Time) {
	for tid, t := range y.targets {
		switch {
		case tid == id && t.leadSince.IsZero():
			t.leadSince = now
		case tid != id && !t.leadSince.IsZero():
			y.settle(t, now)
			t.leadSince = time.Time{}
		}
	}
}

// prune forgets targets quiet for yieldQuiet and, to make room for keep
// when it is new, the oldest beyond yieldTargetsMax; never keep itself.
func (y *yieldBackOff) prune(now time.Time, keep string) {
	for id, t := range y.targets {
		if now.Sub(t.last) > yieldQuiet {
			delete(y.targets, id)
		}
	}
	if _, known := y.targets[keep]; known {
		return
	}
	for len(y.targets) >= yieldTargetsMax {
		oldest := ""
		for id, t := range y.targets {
			if oldest == "" || t.last.Before(y.targets[oldest].last) {
				oldest = id
			}
		}
		delete(y.targets, oldest)
	}
}
