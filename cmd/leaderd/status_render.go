package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/leaderd/leaderd/role"
)

// statusReport is the JSON output of `leaderd status --json`.
type statusReport struct {
	Election   string            `json:"election"`
	Leader     *statusLeader     `json:"leader"` // null when no one campaigns
	Candidates []statusCandidate `json:"candidates"`
	Members    []statusMember    `json:"members"` // [] when none registered
	// Availability is Healthy / Registered: the share of the replicas that
	// could take over; 0 when none is registered.
	Availability float64 `json:"availability"`
	Registered   int     `json:"registered"`
	// Paused is true while `leaderd pause` holds: no automatic role change.
	Paused bool `json:"paused"`
	// Switchover is the switchover request stored, null when none.
	Switchover *statusSwitchover `json:"switchover"`
	Healthy    int               `json:"healthy"`
}

type statusLeader struct {
	ID           string `json:"id"`
	FencingToken int64  `json:"fencing_token"`
}

type statusCandidate struct {
	ID             string    `json:"id"`
	Addr           string    `json:"addr"`
	Since          time.Time `json:"since"`
	LeaseID        string    `json:"lease_id"` // hex, as in the key and LEADERD_LEASE_ID
	CreateRevision int64     `json:"create_revision"`
	Priority       int       `json:"priority"` // 100 when the key names none
}

// statusMember is one replica's published record under
// <prefix>/<election>/members/<id>.
type statusMember struct {
	ID      string     `json:"id"`
	Role    role.Role  `json:"role"`
	Phase   role.Phase `json:"phase"`
	Healthy bool       `json:"healthy"`
	Since   time.Time  `json:"since"`
	Version string     `json:"version"`
	Addr    string     `json:"addr"`
	// Priority is the replica's --priority; 100 when the record names none.
	Priority int    `json:"priority"`
	LeaseID  string `json:"lease_id"` // hex; "" when the key has no lease
	// LeaseSecondsLeft is the TTL etcd reports for the member's lease; -1
	// when the lease has just expired.
	LeaseSecondsLeft int64 `json:"lease_seconds_left"`
	// FencingToken is set only on the member that is the election's leader
	// (matched by the leader candidate's id).
	FencingToken int64 `json:"fencing_token,omitempty"`
}

// draw writes one redraw: a compact JSON line, or the text after a clear
// screen (terminal) or a blank line and a time stamp (pipe, file).
func (s *statusWatch) draw(r statusReport) error {
	defer func() { s.drawn++ }()
	s.turn = switchoverTurn(r.Switchover, time.Now())
	if s.json {
		return json.NewEncoder(s.out).Encode(r)
	}
	now := time.Now()
	var b strings.Builder
	switch {
	case s.terminal:
		b.WriteString("\033[H\033[2J")
	case s.drawn > 0:
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "--- %s ---\n", now.Format(time.RFC3339))
	printStatus(&b, r, now)
	_, err := io.WriteString(s.out, b.String())
	return err
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printJSON writes v as indented JSON: the --json output of status and
// history.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printStatus writes the report as small aligned tables: the leader, the
// candidates, the members and the availability.
func printStatus(w io.Writer, r statusReport, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "election:\t%s\n", r.Election)
	if r.Leader == nil {
		fmt.Fprintf(tw, "leader:\tno leader\n")
	} else {
		fmt.Fprintf(tw, "leader:\t%s\n", r.Leader.ID)
		fmt.Fprintf(tw, "fencing token:\t%d\n", r.Leader.FencingToken)
	}
	if r.Paused {
		fmt.Fprintf(tw, "paused:\tyes (leaderd resume to allow role changes)\n")
	}
	printSwitchover(tw, r.Switchover, now)
	_ = tw.Flush()
	if len(r.Candidates) == 0 {
		fmt.Fprintln(w, "\nno candidates")
	} else {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "POS\tID\tPRIO\tLEASE\tSINCE\tADDR")
		for i, c := range r.Candidates {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", i+1, c.ID, c.Priority, c.LeaseID, since(c.Since, now), orDash(c.Addr))
		}
		_ = tw.Flush()
	}
	fmt.Fprintln(w)
	if len(r.Members) == 0 {
		fmt.Fprintln(w, "members: none registered")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tHEALTHY\tPRIO\tLEASE-LEFT\tTOKEN\tADDR")
	for _, m := range r.Members {
		healthy := "no"
		if m.Healthy {
			healthy = "yes"
		}
		left := "-"
		if m.LeaseID != "" && m.LeaseSecondsLeft >= 0 {
			left = fmt.Sprintf("%ds", m.LeaseSecondsLeft)
		}
		token := "-"
		if m.FencingToken != 0 {
			token = fmt.Sprint(m.FencingToken)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", orDash(m.ID), orDash(string(m.Role)), healthy, m.Priority, left, token, orDash(m.Addr))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\navailability: %d/%d healthy (%.2f)\n", r.Healthy, r.Registered, r.Availability)
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), now.Sub(t).Round(time.Second))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
