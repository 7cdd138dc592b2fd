//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Report collects the measured figures of the scenarios: (scenario,
// measure, value) rows, printed as a table at the end of the suite and
// written to $E2E_REPORT when set.
type Report struct {
	mu   sync.Mutex
	rows [][3]string
}

// Add records one figure.
func (r *Report) Add(scenario, measure string, value any) {
	if d, ok := value.(time.Duration); ok {
		value = d.Round(time.Millisecond).String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, [3]string{scenario, measure, fmt.Sprint(value)})
}

// Table renders the rows as a Markdown table.
func (r *Report) Table() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := [3]int{len("scenario"), len("measure"), len("value")}
	for _, row := range r.rows {
		for i, c := range row {
			w[i] = max(w[i], len(c))
		}
	}
	var b strings.Builder
	line := func(c [3]string) {
		fmt.Fprintf(&b, "| %-*s | %-*s | %-*s |\n", w[0], c[0], w[1], c[1], w[2], c[2])
	}
	line([3]string{"scenario", "measure", "value"})
	line([3]string{strings.Repeat("-", w[0]), strings.Repeat("-", w[1]), strings.Repeat("-", w[2])})
	for _, row := range r.rows {
		line(row)
	}
	return b.String()
}

// Write writes the table to $E2E_REPORT, if set.
func (r *Report) Write(header string) error {
	path := os.Getenv("E2E_REPORT")
	if path == "" {
		return nil
	}
	return os.WriteFile(path, []byte(header+"\n\n"+r.Table()), 0o644)
}
