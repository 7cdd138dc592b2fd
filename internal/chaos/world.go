package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/replicas"
)

const electionName = "chaos"

// raceExitCode is how a -race replica exits on a data race.
const raceExitCode = 66

// World is what a campaign runs in: the etcd cluster, one fault proxy per
// replica-to-member link, the replicas, the fenced store and the record of
// what happened to them.
type World struct {
	opts  Options
	dir   string
	log   *slog.Logger
	etcd  *Cluster
	store *Store
	set   *replicas.Set
	hook  string
	nodes []*node
	byID  map[string]*node

	mu     sync.Mutex // guards the record slices below
	frozen []Window
	hookW  []Window
	exits  []Exit
}

// node is one replica id: its links to the members, which survive
// restarts, and the process currently running under the id.
type node struct {
	id    string
	links []*etcdtest.Proxy // index = member
	extra []string          // --priority and --failback, with -priorities

	mu        sync.Mutex
	rep       *replicas.Replica // nil while not running
	startedAt time.Time         // when rep started
	stderr    *os.File          // the campaign's copy of rep's stderr pipe (write end)
	// stopping holds the processes an injected fault is stopping (true:
	// with SIGTERM, so it must exit 0). Kept per process: a restart must
	// not make the old process's exit, recorded late, look uninjected.
	stopping map[*replicas.Replica]bool
	frozenAt time.Time // zero unless SIGSTOPped
	hookAt   time.Time // zero unless a hook fault is on
	hookMode string
	stall    *stall
}

// stall holds a replica's stderr reader still while set, so its pipe fills
// and leaderd's writes would block.
type stall struct {
	mu   sync.Mutex
	on   bool
	cond *sync.Cond
}

func newStall() *stall {
	s := &stall{}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *stall) set(on bool) {
	s.mu.Lock()
	s.on = on
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *stall) wait() {
	s.mu.Lock()
	for s.on {
		s.cond.Wait()
	}
	s.mu.Unlock()
}

// newWorld starts etcd, the store and the proxies; the replicas start
// with startAll.
func newWorld(ctx context.Context, o Options, dir, binary string, log *slog.Logger) (w *World, err error) {
	w = &World{opts: o, dir: dir, log: log, byID: map[string]*node{}}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if w.etcd, err = StartCluster(ctx, filepath.Join(dir, "etcd"), 3, log); err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if w.store, err = StartStore(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if w.hook, err = writeHook(dir); err != nil {
		return nil, err
	}
	if w.set, err = replicas.NewSet(binary, dir, electionName, o.TTL, o.DemoteTimeout); err != nil {
		return nil, err
	}
	for i := range o.Replicas {
		n := &node{id: fmt.Sprintf("r%d", i+1), stall: newStall(), extra: o.priorityArgs(i)}
		for m := range len(w.etcd.Endpoints()) {
			p, err := etcdtest.NewProxy(w.etcd.ClientURL(m))
			if err != nil {
				return nil, err
			}
			n.links = append(n.links, p)
		}
		w.nodes = append(w.nodes, n)
		w.byID[n.id] = n
	}
	return w, nil
}

func (w *World) ids() []string {
	out := make([]string, len(w.nodes))
	for i, n := range w.nodes {
		out[i] = n.id
	}
	return out
}

// start starts the replica under n's id; it must not be running.
func (w *World) start(n *node) error {
	r, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	// A small pipe, so a stalled reader blocks leaderd's writes within a
	// few lines rather than after 64 KiB of logging.
	_ = setPipeSize(wr, stderrPipeSize)
	endpoints := make([]string, len(n.links))
	for i, p := range n.links {
		endpoints[i] = p.Endpoint()
	}
	unhealthy := filepath.Join(w.dir, "unhealthy."+n.id)
	args := append([]string{
		"--on-promote", w.hook,
		"--on-demote", w.hook,
		"--promote-timeout", w.opts.PromoteTimeout.String(),
		"--health-cmd", "test ! -e " + unhealthy,
		"--health-interval", "1s",
		"--health-timeout", "1s",
		"--health-failures", "2",
		"--log-level", "info",
	}, n.extra...)
	rep, err := w.set.StartWith(replicas.Options{
		Stderr: wr,
		Env: []string{"CHAOS_DIR=" + w.dir, "STORE_URL=" + w.store.URL(),
			// Only a -race build reads it: a race ends the replica at once.
			"GORACE=halt_on_error=1 exitcode=" + strconv.Itoa(raceExitCode)},
	}, n.id, strings.Join(endpoints, ","), args...)
	if err != nil {
		wr.Close()
		r.Close()
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(w.dir, n.id+".stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		logFile = nil
	}
	go pumpStderr(r, logFile, n.stall)
	n.mu.Lock()
	// The campaign keeps the write end until the process exits, to fill
	// the pipe when it stalls the reader.
	n.rep, n.startedAt, n.stderr = rep, time.Now(), wr
	n.mu.Unlock()
	go w.watchExit(n, rep)
	return nil
}

// pumpStderr copies a replica's stderr to its log file, holding still
// while stalled. It ends when every writer (leaderd and its hooks) closed.
func pumpStderr(r *os.File, out *os.File, st *stall) {
	defer r.Close()
	if out != nil {
		defer out.Close()
	}
	buf := make([]byte, 32<<10)
	for {
		st.wait()
		n, err := r.Read(buf)
		if n > 0 && out != nil {
			_, _ = out.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// watchExit records the process's exit, and whether a fault caused it.
func (w *World) watchExit(n *node, rep *replicas.Replica) {
	<-rep.Done()
	code := rep.ExitCode()
	n.mu.Lock()
	graceful, expected := n.stopping[rep]
	delete(n.stopping, rep)
	n.mu.Unlock()
	// A data race is never what the fault asked for.
	injected := expected && code != raceExitCode
	n.exited(rep)
	w.mu.Lock()
	w.exits = append(w.exits, Exit{Replica: n.id, At: time.Now(), Code: code, Injected: injected, Graceful: graceful})
	w.mu.Unlock()
	if !injected {
		w.log.Error("leaderd exited on its own", "replica", n.id, "code", code)
	}
}

// exited forgets rep once it has exited, so the id can start again. Both
// the exit watcher and a fault waiting for the exit call it: whichever runs
// first, a restart right after sees the id free.
func (n *node) exited(rep *replicas.Replica) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rep == rep {
		n.rep = nil
		if n.stderr != nil {
			n.stderr.Close()
			n.stderr = nil
		}
	}
}

// expectStop marks rep's coming exit as injected; n.mu is held.
func (n *node) expectStop(rep *replicas.Replica, graceful bool) {
	if n.stopping == nil {
		n.stopping = map[*replicas.Replica]bool{}
	}
	n.stopping[rep] = graceful
}

// replica is the process running under n's id, or nil.
func (n *node) replica() *replicas.Replica {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rep != nil {
		select {
		case <-n.rep.Done():
			return nil // exited; the watcher is about to forget it
		default:
		}
	}
	return n.rep
}

// since is when the running process started (zero if none).
func (n *node) since() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rep == nil {
		return time.Time{}
	}
	return n.startedAt
}

func (n *node) frozen() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.frozenAt.IsZero()
}

// signal sends sig to the running process; expectExit marks the exit
// that follows as injected.
func (n *node) signal(sig syscall.Signal, expectExit bool) error {
	n.mu.Lock()
	rep := n.rep
	if rep != nil && expectExit {
		n.expectStop(rep, sig == syscall.SIGTERM)
	}
	n.mu.Unlock()
	if rep == nil {
		return errors.New("not running")
	}
	return rep.Signal(sig)
}

// freeze SIGSTOPs the replica; thaw SIGCONTs it and records the window,
// widened by frozenGrace (its timers fire late, its demote runs then).
func (w *World) freeze(n *node) error {
	if err := n.signal(syscall.SIGSTOP, false); err != nil {
		return err
	}
	n.mu.Lock()
	n.frozenAt = time.Now()
	n.mu.Unlock()
	return nil
}

func (w *World) thaw(n *node) {
	n.mu.Lock()
	at := n.frozenAt
	n.frozenAt = time.Time{}
	rep := n.rep
	n.mu.Unlock()
	if rep != nil {
		_ = rep.Signal(syscall.SIGCONT)
	}
	if !at.IsZero() {
		w.mu.Lock()
		w.frozen = append(w.frozen, Window{Replica: n.id, Kind: "frozen", Start: at, End: time.Now().Add(w.frozenGrace())})
		w.mu.Unlock()
	}
}

// frozenGrace covers what a thawed replica does late: notice the passed
// deadline and run its demote hook.
func (w *World) frozenGrace() time.Duration { return w.opts.DemoteTimeout + time.Second }

// setHookMode switches n's hooks to misbehave (mode) or back (hookOK),
// recording the window in which they did.
func (w *World) setHookMode(n *node, mode string) error {
	if err := setFlag(filepath.Join(w.dir, "hook-mode."+n.id), mode); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case mode != hookOK && n.hookAt.IsZero():
		n.hookAt, n.hookMode = time.Now(), mode
	case mode == hookOK && !n.hookAt.IsZero():
		// A hook killed at its timeout may still be ending: the grace.
		w.mu.Lock()
		w.hookW = append(w.hookW, Window{Replica: n.id, Kind: n.hookMode, Start: n.hookAt, End: time.Now().Add(w.frozenGrace())})
		w.mu.Unlock()
		n.hookAt, n.hookMode = time.Time{}, ""
	}
	return nil
}

func (w *World) setUnhealthy(n *node, bad bool) error {
	content := ""
	if bad {
		content = "unhealthy"
	}
	return setFlag(filepath.Join(w.dir, "unhealthy."+n.id), content)
}

// stopReplica stops n's process with SIGTERM (SIGKILL after grace) and
// waits for it, marking the exit as injected.
func (w *World) stopReplica(n *node, grace time.Duration) {
	n.mu.Lock()
	rep := n.rep
	if rep != nil {
		n.expectStop(rep, true)
	}
	n.mu.Unlock()
	if rep == nil {
		return
	}
	_ = rep.Signal(syscall.SIGCONT)
	_ = rep.Stop(grace)
	n.exited(rep)
}

// stallStderr stops reading n's stderr and fills the pipe, so leaderd's
// next write would block; unstall reads again.
func (w *World) stallStderr(n *node) {
	n.stall.set(true)
	n.mu.Lock()
	wr := n.stderr
	n.mu.Unlock()
	if wr == nil {
		return
	}
	// The write end handed to leaderd is in blocking mode (exec made it
	// so), and that mode belongs to the shared file description. A fresh
	// description of the same pipe, opened non-blocking, fills it without
	// ever blocking the campaign and without changing leaderd's.
	raw, err := wr.SyscallConn()
	if err != nil {
		return
	}
	var path string
	_ = raw.Control(func(fd uintptr) { path = fmt.Sprintf("/proc/self/fd/%d", fd) })
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fraw, err := f.SyscallConn()
	if err != nil {
		return
	}
	filler := []byte(strings.Repeat("chaos: stderr stalled\n", 64))
	fill := func(fd uintptr) bool {
		// Writes up to a page are all or nothing: smaller and smaller
		// ones top the pipe up to the last byte. EAGAIN ends each size.
		for _, size := range []int{len(filler), 256, 16, 1} {
			for {
				if _, err := syscall.Write(int(fd), filler[:size]); err != nil {
					break
				}
			}
		}
		return true
	}
	// The pump may have been inside a read when the stall began and drain
	// the first fill; it waits once that read returns, so a second fill
	// after a moment leaves the pipe full.
	_ = fraw.Write(fill)
	time.Sleep(50 * time.Millisecond)
	_ = fraw.Write(fill)
}

// close stops everything, bounded.
func (w *World) close() {
	if w.set != nil {
		for _, n := range w.nodes {
			n.mu.Lock()
			if n.rep != nil {
				n.expectStop(n.rep, false)
			}
			n.mu.Unlock()
			n.stall.set(false)
		}
		w.set.Close(10 * time.Second)
	}
	for _, n := range w.nodes {
		for _, p := range n.links {
			p.Close()
		}
	}
	if w.store != nil {
		w.store.Close()
	}
	if w.etcd != nil {
		w.etcd.Close()
	}
}

// stderrPipeSize is the replicas' stderr pipe capacity (one page; Linux's
// default is 64 KiB).
const stderrPipeSize = 4096

// setPipeSize sets a pipe's capacity (Linux F_SETPIPE_SZ).
func setPipeSize(f *os.File, size int) error {
	const fSetPipeSz = 1031
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, uintptr(size))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
