// Package replicas runs `leaderd run` replicas as child processes with the
// example hooks writing one shared timeline, and reads that timeline back.
// `leaderd demo`, the process-level tests and the benchmark use it, so a
// crash there is a real SIGKILL of a real process.
package replicas

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/examples"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// Set is a group of replicas sharing a working directory and timeline.
type Set struct {
	// Binary is the leaderd executable.
	Binary string
	// Dir holds the hook scripts, the timeline and the replicas' logs.
	Dir string
	// Election, TTL and DemoteTimeout are passed to every replica.
	Election      string
	TTL           time.Duration
	DemoteTimeout time.Duration
	// Log, if set, receives every replica's log lines prefixed by its id.
	Log io.Writer

	mu      sync.Mutex
	running map[*Replica]struct{}
}

// NewSet writes the example hooks into dir and returns a set.
func NewSet(binary, dir, electionName string, ttl, demoteTimeout time.Duration) (*Set, error) {
	for _, name := range []string{"promote.sh", "demote.sh"} {
		b, err := fs.ReadFile(examples.Hooks, "hooks/"+name)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			return nil, err
		}
	}
	return &Set{Binary: binary, Dir: dir, Election: electionName, TTL: ttl, DemoteTimeout: demoteTimeout,
		running: map[*Replica]struct{}{}}, nil
}

// TimelinePath is the file the hooks append their events to.
func (s *Set) TimelinePath() string { return filepath.Join(s.Dir, "timeline") }

// Timeline reads the events so far.
func (s *Set) Timeline() ([]Event, error) { return ReadTimeline(s.TimelinePath()) }

// Replica is one running `leaderd run` process.
type Replica struct {
	ID       string
	Endpoint string // the etcd endpoint it was given
	APIAddr  string // host:port of its HTTP API
	set      *Set
	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
}

// Start starts a replica with the example hooks, its API on a free
// loopback port, and extra flags after the standard ones.
func (s *Set) Start(id, endpoint string, extra ...string) (*Replica, error) {
	return s.StartWith(Options{}, id, endpoint, extra...)
}

// Options change how StartWith wires a replica.
type Options struct {
	// Stderr, if set, is the replica's stderr instead of its log file
	// (stdout still goes there): a test hands it a pipe nobody reads, or
	// one whose read end is closed. The caller keeps and closes its copy.
	Stderr *os.File
	// Env is added to the replica's environment.
	Env []string
}

// StartWith is Start with Options.
func (s *Set) StartWith(o Options, id, endpoint string, extra ...string) (*Replica, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"run",
		"--endpoints", endpoint,
		"--election", s.Election,
		"--id", id,
		"--ttl", s.TTL.String(),
		"--demote-timeout", s.DemoteTimeout.String(),
		"--listen", addr,
		"--on-promote", filepath.Join(s.Dir, "promote.sh"),
		"--on-demote", filepath.Join(s.Dir, "demote.sh"),
		"--log-level", "debug",
	}, extra...)
	cmd := exec.Command(s.Binary, args...)
	cmd.Dir = s.Dir
	cmd.Env = append(append(os.Environ(), "HOOK_TIMELINE="+s.TimelinePath()), o.Env...)
	// Own process group: a Ctrl-C at the terminal reaches the parent only,
	// which then stops the replicas in its own order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logFile, err := os.OpenFile(filepath.Join(s.Dir, id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	var out io.Writer = logFile
	if s.Log != nil {
		out = io.MultiWriter(logFile, &prefixWriter{prefix: id + " | ", w: s.Log})
	}
	cmd.Stdout, cmd.Stderr = out, out
	if o.Stderr != nil {
		cmd.Stderr = o.Stderr
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start replica %s: %w", id, err)
	}
	r := &Replica{ID: id, Endpoint: endpoint, APIAddr: addr, set: s, cmd: cmd, done: make(chan struct{})}
	s.mu.Lock()
	s.running[r] = struct{}{}
	s.mu.Unlock()
	go func() {
		r.waitErr = cmd.Wait()
		logFile.Close()
		s.mu.Lock()
		delete(s.running, r)
		s.mu.Unlock()
		close(r.done)
	}()
	return r, nil
}

// Pid is the process id.
func (r *Replica) Pid() int { return r.cmd.Process.Pid }

// Signal sends sig to the replica process.
func (r *Replica) Signal(sig syscall.Signal) error { return r.cmd.Process.Signal(sig) }

// Done is closed when the process has exited.
func (r *Replica) Done() <-chan struct{} { return r.done }

// ExitCode is the process's exit code once Done is closed (-1: killed by
// a signal, or still running).
func (r *Replica) ExitCode() int {
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code.
func (r *Replica) Wait(timeout time.Duration) (int, error) {
	select { // an exited process wins over an expired timeout
	case <-r.done:
		return r.cmd.ProcessState.ExitCode(), nil
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode(), nil
	case <-t.C:
		return -1, fmt.Errorf("replica %s still running after %s", r.ID, timeout)
	}
}

// Status fetches GET /status, bounded by ctx and 2s.
func (r *Replica) Status(ctx context.Context) (sidecar.Status, error) {
	var st sidecar.Status
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.APIAddr+"/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// Get returns the HTTP status code of GET path on the replica's API.
func (r *Replica) Get(ctx context.Context, path string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.APIAddr+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Stop sends SIGTERM and waits up to timeout; then SIGKILL.
func (r *Replica) Stop(timeout time.Duration) error {
	_ = r.Signal(syscall.SIGTERM)
	if _, err := r.Wait(timeout); err != nil {
		_ = r.Signal(syscall.SIGKILL)
		<-r.done
		return err
	}
	return nil
}

// Close stops every replica still running: SIGCONT (a paused one cannot
// exit), SIGTERM, and SIGKILL after grace. Bounded.
func (s *Set) Close(grace time.Duration) {
	s.mu.Lock()
	rs := make([]*Replica, 0, len(s.running))
	for r := range s.running {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.Signal(syscall.SIGCONT)
			_ = r.Stop(grace)
		}()
	}
	wg.Wait()
}

// Event is one line of the hook timeline:
// "<unix nanos> <hook>-<start|end> <id> <token or -> <reason>".
type Event struct {
	At     time.Time
	Hook   string // promote or demote
	Phase  string // start or end
	ID     string
	Token  int64 // 0 when the hook had none
	Reason role.Reason
}

func (e Event) String() string {
	return fmt.Sprintf("%s %s-%s %s token=%d reason=%s", e.At.Format("15:04:05.000"), e.Hook, e.Phase, e.ID, e.Token, e.Reason)
}

// ReadTimeline parses a timeline file; a missing file is an empty timeline.
func ReadTimeline(path string) ([]Event, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var evs []Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 5 {
			continue // a line still being written
		}
		ns, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("timeline: %q: %w", sc.Text(), err)
		}
		hook, phase, ok := strings.Cut(fields[1], "-")
		if !ok {
			return nil, fmt.Errorf("timeline: %q: bad event", sc.Text())
		}
		var token int64
		if fields[3] != "-" {
			if token, err = strconv.ParseInt(fields[3], 10, 64); err != nil {
				return nil, fmt.Errorf("timeline: %q: %w", sc.Text(), err)
			}
		}
		evs = append(evs, Event{At: time.Unix(0, ns), Hook: hook, Phase: phase, ID: fields[2], Token: token, Reason: role.Reason(fields[4])})
	}
	return evs, sc.Err()
}

// Tenure is one primary term read off a timeline: promote start to the
// end of the demote that closed it (zero End while still open).
type Tenure struct {
	ID         string
	Token      int64
	Start, End time.Time
	EndReason  role.Reason
}

// Tenures pairs each promote start with its replica's next demote end.
func Tenures(evs []Event) []Tenure {
	var out []Tenure
	open := map[string]int{} // replica id -> index in out
	for _, e := range evs {
		switch {
		case e.Hook == "promote" && e.Phase == "start":
			open[e.ID] = len(out)
			out = append(out, Tenure{ID: e.ID, Token: e.Token, Start: e.At})
		case e.Hook == "demote" && e.Phase == "end":
			if i, ok := open[e.ID]; ok {
				out[i].End, out[i].EndReason = e.At, e.Reason
				delete(open, e.ID)
			}
		}
	}
	return out
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// prefixWriter prefixes each line; writes from one replica are serialised.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i]); err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Build compiles leaderd into dir (for tests and the benchmark; run from
// inside the module) with the given build tags, and returns the binary's
// path. Tag "nodemo" gives the deployable sidecar without embedded etcd.
func Build(ctx context.Context, dir string, tags ...string) (string, error) {
	return build(ctx, dir, nil, tags)
}

// BuildRace is Build with the race detector compiled in, for the fault
// campaign: a data race under faults then ends the replica (with GORACE
// halt_on_error=1) where the campaign sees it.
func BuildRace(ctx context.Context, dir string, tags ...string) (string, error) {
	return build(ctx, dir, []string{"-race"}, tags)
}

func build(ctx context.Context, dir string, flags, tags []string) (string, error) {
	bin := filepath.Join(dir, "leaderd")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := append([]string{"build", "-o", bin}, flags...)
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(args, "github.com/leaderd/leaderd/cmd/leaderd")
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// WaitFor polls the timeline until find returns an index, or ctx ends.
// find gets the whole timeline; return -1 for "not yet".
func (s *Set) WaitFor(ctx context.Context, find func([]Event) int) (Event, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		evs, err := s.Timeline()
		if err != nil {
			return Event{}, err
		}
		if i := find(evs); i >= 0 {
			return evs[i], nil
		}
		select {
		case <-ctx.Done():
			return Event{}, fmt.Errorf("waiting on the timeline: %w; it holds:\n%s", ctx.Err(), formatEvents(evs))
		case <-tick.C:
		}
	}
}

// First returns a finder for the first event at or after index from that
// matches every non-empty field of want (and want.Token when non-zero).
func First(from int, want Event) func([]Event) int {
	return func(evs []Event) int {
		for i := from; i < len(evs); i++ {
			e := evs[i]
			if (want.Hook == "" || e.Hook == want.Hook) && (want.Phase == "" || e.Phase == want.Phase) &&
				(want.ID == "" || e.ID == want.ID) && (want.Reason == "" || e.Reason == want.Reason) &&
				(want.Token == 0 || e.Token == want.Token) {
				return i
			}
		}
		return -1
	}
}

func formatEvents(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("  " + e.String() + "\n")
	}
	return b.String()
}

// BuildTemp compiles leaderd into a new temporary directory, bounded in
// time; remove deletes that directory.
func BuildTemp() (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "leaderd-bin-*")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if bin, err = Build(ctx, dir); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}
