package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cenkalti/backoff/v4"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// Deadlines of `leaderd status`: it is a one-shot command an operator (or
// a script) waits on, so it gives up rather than retrying.
const (
	statusDialTimeout = 3 * time.Second
	statusCallTimeout = 5 * time.Second
)

// Pacing of `leaderd status --watch`.
const (
	// watchCoalesce folds a burst of changes into one redraw: at most one
	// redraw per interval.
	watchCoalesce = 100 * time.Millisecond
	// watchCheck is how often a quiet watch checks that etcd still answers:
	// a watch on a dead connection just stays silent, and a frozen screen
	// would look like a healthy election.
	watchCheck = 10 * time.Second
	// watchRetryMax caps the backoff between attempts to re-establish.
	watchRetryMax = 10 * time.Second
)

// statusOptions is what `leaderd status` parsed. Config carries the
// connection and election fields; the rest keep their defaults.
type statusOptions struct {
	Config sidecar.Config
	JSON   bool
	Watch  bool
}

type statusFlags struct {
	set   *flagSet
	conn  connFlags
	json  *boolFlag
	watch *boolFlag
}

func newStatusFlags(env lookupEnv) *statusFlags {
	s := newFlagSet("status", "--election NAME [--endpoints URLS] [--json] [--watch]",
		"Show an election's leader and fencing token, its candidates in campaign\n"+
			"order (the first one is the leader), and the members the replicas publish\n"+
			"(role, health, lease left) with the election's availability\n"+
			"(healthy / registered members), as read from etcd now. --watch redraws on\n"+
			"every change until interrupted (with --json: one JSON object per line).\n\n"+
			"Exit status: 0 success, 1 etcd unreachable or the read failed, 2 bad input.", env)
	f := &statusFlags{set: s}
	f.conn = bindElection(s, sidecar.DefaultConfig())
	f.conn.bindTLSAuth(s)
	f.json = s.boolean("json", "print one JSON object instead of the table")
	f.watch = s.boolean("watch", "redraw on every change until SIGINT/SIGTERM")
	return f
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
	opts := statusOptions{Config: cfg, JSON: f.json.value}
	if f.watch != nil { // history shares these flags but has no --watch
		opts.Watch = f.watch.value
	}
	return opts, nil
}

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
	Paused  bool `json:"paused"`
	Healthy int  `json:"healthy"`
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
	LeaseID string     `json:"lease_id"` // hex; "" when the key has no lease
	// LeaseSecondsLeft is the TTL etcd reports for the member's lease; -1
	// when the lease has just expired.
	LeaseSecondsLeft int64 `json:"lease_seconds_left"`
	// FencingToken is set only on the member that is the election's leader
	// (matched by the leader candidate's id).
	FencingToken int64 `json:"fencing_token,omitempty"`
}

// readStatus reads the election's candidates (the first is the leader) and
// its members. It also returns the revision of the candidates read, from
// which a watch misses nothing.
func readStatus(ctx context.Context, client *clientv3.Client, prefix, electionName string) (statusReport, int64, error) {
	cands, rev, err := election.NewStore(client, prefix, electionName).Candidates(ctx)
	if err != nil {
		return statusReport{}, 0, err
	}
	members, err := election.NewStore(client, prefix, electionName).Members(ctx)
	if err != nil {
		return statusReport{}, 0, err
	}
	control, _, err := election.NewStore(client, prefix, electionName).ReadControl(ctx)
	if err != nil {
		return statusReport{}, 0, err
	}
	r := statusReport{
		Paused:       control.Paused,
		Election:     electionName,
		Candidates:   make([]statusCandidate, 0, len(cands)),
		Members:      make([]statusMember, 0, len(members)),
		Availability: election.Availability(members),
		Registered:   len(members),
	}
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
	for _, m := range members {
		sm := statusMember{
			ID:               m.ID,
			Role:             m.Role,
			Phase:            m.Phase,
			Healthy:          m.Healthy,
			Since:            m.Since,
			Version:          m.Version,
			Addr:             m.Addr,
			LeaseSecondsLeft: m.LeaseSeconds,
		}
		if m.LeaseID != 0 {
			sm.LeaseID = election.LeaseHex(m.LeaseID)
		}
		if r.Leader != nil && m.ID == r.Leader.ID {
			sm.FencingToken = r.Leader.FencingToken
		}
		if m.Healthy {
			r.Healthy++
		}
		r.Members = append(r.Members, sm)
	}
	return r, rev, nil
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
	if opts.Watch {
		return watchCommand(opts, stdout, stderr)
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

// watchCommand is `leaderd status --watch`: SIGINT or SIGTERM ends it
// with exit 0; etcd unreachable at the start is exit 1, as without --watch.
func watchCommand(opts statusOptions, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), terminationSignals...)
	defer stop()
	endpoints := strings.Join(opts.Config.Endpoints, ",")
	client, err := newCLIClient(opts.Config)
	if err != nil {
		fmt.Fprintf(stderr, "leaderd status: %s\n", oneLine(etcdError(endpoints, err).Error()))
		return exitError
	}
	defer client.Close()
	w := &statusWatch{
		client: client, prefix: opts.Config.Prefix, election: opts.Config.Election,
		json: opts.JSON, out: stdout, errOut: stderr, endpoints: endpoints,
	}
	if err := w.run(ctx); err != nil {
		fmt.Fprintf(stderr, "leaderd status: %s\n", oneLine(err.Error()))
		return exitError
	}
	return exitOK
}

// statusWatch is the core of `leaderd status --watch`, free of signals and
// process state so tests can drive it with a context and a buffer.
type statusWatch struct {
	client           *clientv3.Client
	prefix, election string
	json             bool          // one compact JSON object per line instead of the text
	out, errOut      io.Writer     // redraws; one line per etcd trouble
	endpoints        string        // for messages
	check            time.Duration // liveness check of a quiet watch; 0: watchCheck
	callTimeout      time.Duration // bound of each read; 0: statusCallTimeout

	terminal bool // out is a terminal: clear the screen between redraws
	drawn    int  // redraws so far
}

// run draws the status, then redraws it after every change under
// <prefix>/<election>/ until ctx ends, and returns nil then. It returns an
// error only when the first read fails (etcd unreachable at the start).
// Later failures are reported on errOut and retried with backoff.
func (s *statusWatch) run(ctx context.Context) error {
	s.terminal = !s.json && isTerminal(s.out)
	report, rev, err := s.read(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := s.draw(report); err != nil {
		return err
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = 500*time.Millisecond, watchRetryMax, 0
	bo.Reset()
	for {
		err := s.follow(ctx, rev)
		if ctx.Err() != nil {
			return nil
		}
		// The watch broke or etcd stopped answering: say so, wait, read
		// again and watch from there.
		for {
			wait := bo.NextBackOff()
			fmt.Fprintf(s.errOut, "leaderd status: %s; retrying in %s\n", oneLine(err.Error()), wait.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			if report, rev, err = s.read(ctx); err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
		}
		bo.Reset()
		if err := s.draw(report); err != nil {
			return err
		}
	}
}

// follow watches the election's keys from rev+1 and redraws after each
// burst of changes. It returns when ctx ends, or with the reason the watch
// (or a re-read) failed.
func (s *statusWatch) follow(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.client.Watch(wctx, s.prefix+"/"+s.election+"/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	defer func() {
		cancel()
		for range wch {
			// drain until the watcher closes so nothing is left behind
		}
	}()
	redraw := time.NewTimer(time.Hour)
	redraw.Stop()
	defer redraw.Stop()
	pending := false
	every := s.check
	if every <= 0 {
		every = watchCheck
	}
	check := time.NewTicker(every)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wr, ok := <-wch:
			switch {
			case !ok:
				return s.etcdErr(errors.New("watch closed"))
			case wr.Err() != nil:
				return s.etcdErr(wr.Err())
			}
			if len(wr.Events) > 0 && !pending {
				// Trailing edge: the redraw shows the whole burst.
				pending = true
				redraw.Reset(watchCoalesce)
			}
		case <-redraw.C:
			pending = false
			report, _, err := s.read(ctx)
			if err != nil {
				return err
			}
			if err := s.draw(report); err != nil {
				return err
			}
			check.Reset(every)
		case <-check.C:
			// A watch on a lost connection stays silent: make sure etcd
			// still answers, so the screen does not show stale data as
			// current.
			cctx, ccancel := context.WithTimeout(ctx, s.timeout())
			_, err := s.client.Get(cctx, s.prefix+"/"+s.election+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			ccancel()
			if err != nil && ctx.Err() == nil {
				return s.etcdErr(err)
			}
		}
	}
}

// read is one bounded readStatus.
func (s *statusWatch) read(ctx context.Context) (statusReport, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	r, rev, err := readStatus(rctx, s.client, s.prefix, s.election)
	if err != nil {
		return statusReport{}, 0, s.etcdErr(err)
	}
	return r, rev, nil
}

func (s *statusWatch) timeout() time.Duration {
	if s.callTimeout > 0 {
		return s.callTimeout
	}
	return statusCallTimeout
}

func (s *statusWatch) etcdErr(err error) error { return etcdError(s.endpoints, err) }

// draw writes one redraw: a compact JSON line, or the text after a clear
// screen (terminal) or a blank line and a time stamp (pipe, file).
func (s *statusWatch) draw(r statusReport) error {
	defer func() { s.drawn++ }()
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
	report, _, err := readStatus(ctx, client, cfg.Prefix, cfg.Election)
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
	_ = tw.Flush()
	if len(r.Candidates) == 0 {
		fmt.Fprintln(w, "\nno candidates")
	} else {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "POS\tID\tLEASE\tSINCE\tADDR")
		for i, c := range r.Candidates {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, c.ID, c.LeaseID, since(c.Since, now), orDash(c.Addr))
		}
		_ = tw.Flush()
	}
	fmt.Fprintln(w)
	if len(r.Members) == 0 {
		fmt.Fprintln(w, "members: none registered")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tHEALTHY\tLEASE-LEFT\tTOKEN\tADDR")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", orDash(m.ID), orDash(string(m.Role)), healthy, left, token, orDash(m.Addr))
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
