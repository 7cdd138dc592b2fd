// Package replicas runs `leaderd run` replicas as child processes with the
// example hooks writing one shared timeline, and reads that timeline back.
// `leaderd demo`, the process-level tests and the benchmark use it, so a
// crash there is a real SIGKILL of a real process.
package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/examples"
	"github.com/leaderd/leaderd/internal/timeline"
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

// Timeline reads the events so far; a line still being written is skipped.
func (s *Set) Timeline() ([]timeline.Event, error) {
	return timeline.ReadFile(s.TimelinePath(), timeline.ParseOptions{SkipPartial: true})
}

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

// ReleaseFlags are `make build`'s flags (Makefile, scripts/images.sh) but
// the version: the binary users run, static and stripped.
var ReleaseFlags = []string{"-trimpath", "-ldflags", "-s -w"}

// ReleaseTags are `make build`'s tags: nodemo leaves out the embedded etcd
// of `leaderd demo`; grpcnotrace, gRPC's request tracing (off unless
// grpc.EnableTracing is set, which leaderd never does) and with it
// golang.org/x/net/trace and html/template.
var ReleaseTags = []string{"nodemo", "grpcnotrace"}

// BuildRelease compiles leaderd as `make build` does: CGO_ENABLED=0,
// ReleaseTags, ReleaseFlags. The benchmark measures this binary, since the
// footprint depends on the build: cgo maps libc, the demo embeds etcd.
func BuildRelease(ctx context.Context, dir string) (string, error) {
	return buildEnv(ctx, dir, []string{"CGO_ENABLED=0"}, ReleaseFlags, ReleaseTags)
}

func build(ctx context.Context, dir string, flags, tags []string) (string, error) {
	return buildEnv(ctx, dir, nil, flags, tags)
}

func buildEnv(ctx context.Context, dir string, env, flags, tags []string) (string, error) {
	bin := filepath.Join(dir, "leaderd")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := append([]string{"build", "-o", bin}, flags...)
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(args, "github.com/leaderd/leaderd/cmd/leaderd")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// WaitFor polls the timeline until find returns an index, or ctx ends.
// find gets the whole timeline; return -1 for "not yet".
func (s *Set) WaitFor(ctx context.Context, find func([]timeline.Event) int) (timeline.Event, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		evs, err := s.Timeline()
		if err != nil {
			return timeline.Event{}, err
		}
		if i := find(evs); i >= 0 {
			return evs[i], nil
		}
		select {
		case <-ctx.Done():
			return timeline.Event{}, fmt.Errorf("waiting on the timeline: %w; it holds:\n%s", ctx.Err(), timeline.Format(evs))
		case <-tick.C:
		}
	}
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
