//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/leaderd/leaderd/internal/timeline"
)

// WriteInterval paces the Writer (a rate, not a synchronisation).
const WriteInterval = 50 * time.Millisecond

// WriteResult is one write the Writer sent.
type WriteResult struct {
	ID      string
	Replica string    // the app written to
	Sent    time.Time // just before the request
	Recv    time.Time // when the answer (or the error) came
	Code    int       // 0: no answer, outcome unknown
	Token   int64     // from a 200's entry
	Body    string    // of a refusal
}

// Writer keeps writing, one write at a time, to whichever app the
// Monitor's latest sample shows as the only primary, with unique ids.
type Writer struct {
	stack   *Stack
	monitor *Monitor
	mu      sync.Mutex
	results []WriteResult
	done    chan struct{}
}

// StartWriter starts writing until ctx ends.
func (s *Stack) StartWriter(ctx context.Context, m *Monitor) *Writer {
	w := &Writer{stack: s, monitor: m, done: make(chan struct{})}
	go w.run(ctx)
	return w
}

func (w *Writer) run(ctx context.Context) {
	defer close(w.done)
	tick := time.NewTicker(WriteInterval)
	defer tick.Stop()
	for n := 1; ; {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		target, ok := w.monitor.CurrentPrimary()
		if !ok {
			continue
		}
		res := WriteResult{ID: fmt.Sprintf("w%06d", n), Replica: target.ID, Sent: time.Now()}
		n++
		// Not bounded by ctx: a write in flight when the test ends still
		// gets its answer (Write bounds it), so no outcome is left unknown
		// by the test's own cancellation.
		code, body, err := w.stack.Write(context.WithoutCancel(ctx), target, res.ID, "data-"+res.ID)
		res.Recv = time.Now()
		if err == nil {
			res.Code = code
			if code == http.StatusOK {
				var e AppEntry
				if jerr := json.Unmarshal([]byte(body), &e); jerr == nil {
					res.Token = e.Token
				}
			} else {
				res.Body = body
			}
		} else {
			res.Body = err.Error()
		}
		w.mu.Lock()
		w.results = append(w.results, res)
		w.mu.Unlock()
	}
}

// Wait waits (bounded) for the writer to end once its context has ended.
func (w *Writer) Wait() {
	select {
	case <-w.done:
	case <-time.After(4 * RequestTimeout):
	}
}

// Results returns every write so far.
func (w *Writer) Results() []WriteResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WriteResult{}, w.results...)
}

// Acked returns the writes answered 200, in order of answer.
func Acked(results []WriteResult) []WriteResult {
	var acked []WriteResult
	for _, r := range results {
		if r.Code == http.StatusOK {
			acked = append(acked, r)
		}
	}
	sort.SliceStable(acked, func(i, j int) bool { return acked[i].Recv.Before(acked[j].Recv) })
	return acked
}

// WriteCounts summarises the outcomes: "200: n, 409: n, 503: n, no answer: n".
func WriteCounts(results []WriteResult) string {
	counts := map[int]int{}
	for _, r := range results {
		counts[r.Code]++
	}
	var codes []int
	for c := range counts {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		name := fmt.Sprint(c)
		if c == 0 {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, counts[c]))
	}
	return strings.Join(parts, ", ")
}

// CheckAckTokens verifies that every acknowledged write carries the token
// of the tenure that was primary when it was acknowledged, on the replica
// of that tenure. The instant of acknowledgement is somewhere in [Sent,
// Recv]; tenure T can acknowledge from its promote's start until the next
// tenure's promote has ended (that promote fences a majority before it
// ends). So the two intervals must meet.
func CheckAckTokens(acked []WriteResult, tenures []timeline.Tenure) []string {
	byToken := map[int64]int{}
	for i, t := range tenures {
		byToken[t.Token] = i
	}
	var bad []string
	for _, w := range acked {
		i, ok := byToken[w.Token]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s acknowledged by %s with token %d, which no tenure had", w.ID, w.Replica, w.Token))
			continue
		}
		t := tenures[i]
		if t.ID != w.Replica {
			bad = append(bad, fmt.Sprintf("%s acknowledged by %s with token %d, the tenure of %s", w.ID, w.Replica, w.Token, t.ID))
			continue
		}
		from := t.Start
		var until time.Time // zero: no later tenure
		if i+1 < len(tenures) {
			until = tenures[i+1].Promoted
			if until.IsZero() { // that promote never ended: use its start
				until = tenures[i+1].Start
			}
		}
		if w.Recv.Before(from) || (!until.IsZero() && w.Sent.After(until)) {
			bad = append(bad, fmt.Sprintf("%s acknowledged by %s with token %d in [%s, %s], outside that tenure [%s, %s]",
				w.ID, w.Replica, w.Token, w.Sent.Format("15:04:05.000"), w.Recv.Format("15:04:05.000"),
				from.Format("15:04:05.000"), until.Format("15:04:05.000")))
		}
	}
	return bad
}
