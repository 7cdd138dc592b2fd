package chaos

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// prioritySource is the stream the replicas' priorities are drawn from:
// its own, so turning -priorities on changes no fault draw of a seed.
const prioritySource = 0x7072696f // "prio"

// Priorities gives n replicas distinct priorities, a permutation of 100,
// 110, ... drawn from the seed, so the favourite is not always r1.
func Priorities(seed int64, n int) []int {
	r := rand.New(rand.NewPCG(uint64(seed), prioritySource))
	out := make([]int, n)
	for i, p := range r.Perm(n) {
		out[i] = 100 + 10*p
	}
	return out
}

// priorityArgs are the --priority and --failback flags of replica i, none
// when the campaign runs without -priorities.
func (o Options) priorityArgs(i int) []string {
	if !o.Priorities {
		return nil
	}
	args := []string{"--priority", strconv.Itoa(Priorities(o.Seed, o.Replicas)[i])}
	if o.Failback > 0 {
		args = append(args, "--failback", "after="+o.Failback.String())
	}
	return args
}

// priorityMap is each replica's priority by id, nil without -priorities.
func (o Options) priorityMap(ids []string) map[string]int {
	if !o.Priorities {
		return nil
	}
	ps := Priorities(o.Seed, len(ids))
	m := make(map[string]int, len(ids))
	for i, id := range ids {
		m[id] = ps[i]
	}
	return m
}

// highest is the running replica of the highest priority ("" if none).
func highest(prio map[string]int, running []string) string {
	best := ""
	for _, id := range running {
		if best == "" || prio[id] > prio[best] {
			best = id
		}
	}
	return best
}

// endWait is how long the end state waits for failback to bring the
// highest replica back: its delay, a hand-off, and the first back-off of
// a failback whose target failed a promote just before the heal.
func endWait(failback, bound time.Duration) time.Duration {
	return failback + 2*bound + 5*time.Second
}

// sortedIDs is the map's keys in order (for reports).
func sortedIDs(m map[string]int) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// settlePriorities, at the end of a run with -priorities, records the
// highest running replica, gives failback (if on) time to bring it back,
// then watches a quiet window in which no hand-over is due.
func (c *campaign) settlePriorities(rec *Record) {
	var running []string
	for _, n := range c.w.nodes {
		if n.replica() != nil {
			running = append(running, n.id)
		}
	}
	rec.End.Highest = highest(rec.Priorities, running)
	if c.o.Failback > 0 {
		at := poll(c.ctx, endWait(c.o.Failback, c.bound), func() (time.Time, bool) {
			p, ok := c.obs.steady(time.Now().Add(-SampleInterval))
			return time.Now(), ok && p == rec.End.Highest
		})
		if at.IsZero() {
			c.log.Warn("the highest-priority replica is not the primary at the end", "highest", rec.End.Highest)
		}
	}
	quiet := &Window{Replica: "*", Kind: "quiet", Start: time.Now()}
	c.sleep(c.o.Failback + 2*c.o.TTL)
	quiet.End = time.Now()
	rec.End.Quiet = quiet
}

// The sidecar's log messages for a yield at a win and a failback request
// (sidecar/priority.go): the campaign counts them in the replicas' logs,
// as evidence that the run exercised them.
const (
	logYield    = `msg="elected, but a higher-priority replica campaigns: yielding without promoting"`
	logFailback = `msg="failback: handing the role to a higher-priority replica"`
)

// countPriorityLogs fills rec.Yields and rec.Failbacks from the replicas'
// stderr logs (every process of an id appends to one file).
func (c *campaign) countPriorityLogs(rec *Record) {
	for _, n := range c.w.nodes {
		b, err := os.ReadFile(filepath.Join(c.w.dir, n.id+".stderr.log"))
		if err != nil {
			continue
		}
		rec.Yields += bytes.Count(b, []byte(logYield))
		rec.Failbacks += bytes.Count(b, []byte(logFailback))
	}
}
