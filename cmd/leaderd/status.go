package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/sidecar"
)

// Deadlines of `leaderd status`: it is a one-shot command an operator (or
// a script) waits on, so it gives up rather than retrying.
const (
	statusDialTimeout = 3 * time.Second
	statusCallTimeout = 5 * time.Second
)

// statusOptions is what `leaderd status` parsed. Config carries the
// connection and election fields; the rest keep their defaults.
type statusOptions struct {
	Config sidecar.Config
	JSON   bool
}

type statusFlags struct {
	set  *flagSet
	conn connFlags
	json *boolFlag
}

func newStatusFlags(env lookupEnv) *statusFlags {
	s := newFlagSet("status", "--election NAME [--endpoints URLS] [--json] [flags]",
		"Show an election's leader and fencing token and its candidates in campaign\n"+
			"order (the first one is the leader), as read from etcd now.\n\n"+
			"Exit status: 0 success, 1 etcd unreachable or the read failed, 2 bad input.", env)
	f := &statusFlags{set: s}
	f.conn = bindElection(s, sidecar.DefaultConfig())
	f.conn.bindTLSAuth(s)
	f.json = s.boolean("json", "print one JSON object instead of the table")
	return f
}

// parseStatus turns `leaderd status` arguments and the environment into
// validated options. It returns errHelp for --help.
func parseStatus(args []string, env lookupEnv) (statusOptions, error) {
	return newStatusFlags(env).parse(args)
}

func (f *statusFlags) parse(args []string) (statusOptions, error) {
	if err := f.set.parse(args); err != nil {
		return statusOptions{}, err
	}
	cfg := sidecar.DefaultConfig()
	if cfg.ID == "" {
		cfg.ID = "leaderd-status" // status campaigns for nothing; only Validate needs an id
	}
	if err := f.conn.apply(&cfg); err != nil {
		return statusOptions{}, err
	}
	// Validate checks the endpoints, election name, prefix and TLS files
	// with the same messages as run; the other fields hold valid defaults.
	if err := cfg.Validate(); err != nil {
		return statusOptions{}, f.set.explain(err)
	}
	return statusOptions{Config: cfg, JSON: f.json.value}, nil
}

// statusReport is the JSON output of `leaderd status --json`.
type statusReport struct {
	Election   string            `json:"election"`
	Leader     *statusLeader     `json:"leader"` // null when no one campaigns
	Candidates []statusCandidate `json:"candidates"`
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
}

// readStatus reads the election's candidates; the first is the leader.
func readStatus(ctx context.Context, client *clientv3.Client, prefix, electionName string) (statusReport, error) {
	cands, _, err := election.Candidates(ctx, client, prefix, electionName)
	if err != nil {
		return statusReport{}, err
	}
	r := statusReport{Election: electionName, Candidates: make([]statusCandidate, 0, len(cands))}
	for _, c := range cands {
		r.Candidates = append(r.Candidates, statusCandidate{
			ID:             c.ID,
			Addr:           c.Addr,
			Since:          c.Since,
			LeaseID:        election.LeaseHex(c.LeaseID),
			CreateRevision: c.CreateRevision,
		})
	}
	if len(cands) > 0 {
		r.Leader = &statusLeader{ID: cands[0].ID, FencingToken: cands[0].FencingToken()}
	}
	return r, nil
}

// statusCommand is `leaderd status`.
func statusCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	f := newStatusFlags(env)
	opts, err := f.parse(args)
	if errors.Is(err, errHelp) {
		f.set.usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "leaderd status: %s\n", oneLine(err.Error()))
		return exitBadInput
	}
	report, err := fetchStatus(opts.Config)
	if err != nil {
		fmt.Fprintf(stderr, "leaderd status: %s\n", oneLine(err.Error()))
		return exitError
	}
	if opts.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			fmt.Fprintf(stderr, "leaderd status: %s\n", oneLine(err.Error()))
			return exitError
		}
		return exitOK
	}
	printStatus(stdout, report, time.Now())
	return exitOK
}

// fetchStatus connects to etcd and reads the election, each step bounded.
func fetchStatus(cfg sidecar.Config) (statusReport, error) {
	endpoints := strings.Join(cfg.Endpoints, ",")
	client, err := newCLIClient(cfg)
	if err != nil {
		return statusReport{}, etcdError(endpoints, err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), statusCallTimeout)
	defer cancel()
	report, err := readStatus(ctx, client, cfg.Prefix, cfg.Election)
	if err != nil {
		return statusReport{}, etcdError(endpoints, err)
	}
	return report, nil
}

// etcdError says "unreachable" when etcd did not answer in time, and
// otherwise passes on what etcd said (auth failed, permission denied).
func etcdError(endpoints string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded || status.Code(err) == codes.Unavailable {
		return fmt.Errorf("etcd unreachable at %s: %w", endpoints, err)
	}
	return fmt.Errorf("etcd at %s: %w", endpoints, err)
}

// printStatus writes the report as a small aligned table.
func printStatus(w io.Writer, r statusReport, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "election:\t%s\n", r.Election)
	if r.Leader == nil {
		fmt.Fprintf(tw, "leader:\tno leader\n")
	} else {
		fmt.Fprintf(tw, "leader:\t%s\n", r.Leader.ID)
		fmt.Fprintf(tw, "fencing token:\t%d\n", r.Leader.FencingToken)
	}
	_ = tw.Flush()
	if len(r.Candidates) == 0 {
		fmt.Fprintln(w, "\nno candidates")
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POS\tID\tLEASE\tSINCE\tADDR")
	for i, c := range r.Candidates {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, c.ID, c.LeaseID, since(c.Since, now), orDash(c.Addr))
	}
	_ = tw.Flush()
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
