package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"google.golang.org/grpc"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// Named limits: generous for a loaded machine, short enough that a broken
// member fails the campaign instead of hanging it.
const (
	// clusterReadyTimeout caps StartCluster's wait for every member to serve.
	clusterReadyTimeout = 30 * time.Second
	// restartReadyWait caps Restart's wait for the member to be ready. A
	// member that rejoins a quorum is ready within a few election timeouts;
	// without a quorum it never is.
	restartReadyWait = 5 * time.Second
	// memberStopTimeout caps stopping one member: embed's Close waits up to
	// etcd's request timeout (7s) for HTTP/1 client requests, then a second
	// for peer connections.
	memberStopTimeout = 15 * time.Second
	// bindAttempts is how often StartCluster picks new ports when another
	// process took a picked port between the probe and etcd's own bind.
	bindAttempts = 5
	// rebindWait bounds Restart's retries of a port that is still (or
	// briefly) in use; its ports cannot change.
	rebindWait = 2 * time.Second
)

var (
	// ErrClosed is returned by Kill and Restart after Close.
	ErrClosed = errors.New("chaos: cluster closed")
	// ErrNotReady is returned by Restart when the member runs but has not
	// become ready within its bound, e.g. because its cluster has no quorum.
	// The member is left running and becomes ready once a quorum forms.
	ErrNotReady = errors.New("chaos: restarted member not ready")
)

// Cluster is an embedded etcd cluster on loopback whose every member-to-
// member link passes through a fault proxy, so that a link between two
// members can be cut both ways, a member isolated from all its peers while
// its clients still reach it, and members killed and restarted. Kill,
// Restart and the link faults are safe for concurrent use.
//
// Each member listens for peers on a private port and advertises its
// proxy's address instead (etcd derives member IDs from the advertised
// URLs, so the cluster never sees the private ports). The proxy learns
// which member a connection comes from by the X-Server-From header rafthttp
// sends; requests without it (probes, lease renewals a follower forwards to
// the leader, version checks) come from an unknown source and are cut only
// when the member they go to is isolated or down. So a member cut off from
// the leader (by Isolate or CutLink) can still forward its clients' lease
// renewals to the leader until it notices the leader is gone: one to two
// election timeouts (randomized), after which it knows no leader and
// forwards nothing.
type Cluster struct {
	logger          *slog.Logger
	token           string
	electionTimeout time.Duration
	members         []*member

	faultMu  sync.Mutex
	ids      map[string]int // member ID (hex, as in X-Server-From) -> index
	cut      [][]bool       // cut[i][j]: traffic from i to j is dropped; kept symmetric
	isolated []bool         // also drop header-less traffic to the member
	down     []bool         // the member is killed: drop everything to it

	mu       sync.Mutex // guards closed and every member's run
	closed   bool
	stopping sync.WaitGroup // member stops in flight, which Close waits for
}

// member is one etcd member, its fixed addresses and its proxy.
type member struct {
	index     int
	name      string
	dir       string
	clientURL url.URL // the member's own client listener
	peerURL   url.URL // the member's own (private) peer listener
	proxyURL  url.URL // its proxy, the peer URL it advertises
	proxy     *peerProxy
	logger    *slog.Logger // etcd's own error-level entries

	op  sync.Mutex   // serialises Kill and Restart of this member
	run *incarnation // guarded by Cluster.mu; nil while killed
}

// incarnation is one run of a member, from its start to its kill.
type incarnation struct {
	etcd     *embed.Etcd
	stopping atomic.Bool // read by its log core: errors while stopping are expected

	mu      sync.Mutex
	servers []*grpc.Server // its client servers, made once the member is ready
}

// addServer is etcd's ServiceRegister hook, the one way to reach the gRPC
// servers an embedded member serves clients with.
func (r *incarnation) addServer(s *grpc.Server) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.servers = append(r.servers, s)
}

func (r *incarnation) grpcServers() []*grpc.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.servers)
}

// StartCluster starts an n-member cluster with its data under dir, one
// subdirectory per member, and waits until every member serves clients
// (bounded by ctx and a 30s cap). The ports stay the same across Kill and
// Restart; if another process takes a picked port before etcd binds it,
// the whole cluster is started again on new ports. On error nothing is
// left running.
func StartCluster(ctx context.Context, dir string, n int, logger *slog.Logger) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("chaos: cluster of %d members", n)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var err error
	for attempt := 1; attempt <= bindAttempts; attempt++ {
		var c *Cluster
		c, err = startCluster(ctx, dir, n, logger)
		if err == nil {
			return c, nil
		}
		if !etcdtest.IsAddrInUse(err) {
			break
		}
		logger.Warn("port taken, restarting the cluster on new ports", "attempt", attempt, "err", err)
	}
	return nil, err
}

func startCluster(ctx context.Context, dir string, n int, logger *slog.Logger) (_ *Cluster, err error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		logger:   logger.With("component", "chaos-etcd"),
		token:    "chaos-" + etcdtest.RandomSuffix(),
		ids:      make(map[string]int),
		cut:      make([][]bool, n),
		isolated: make([]bool, n),
		down:     make([]bool, n),
		// The members keep embed's default timing.
		electionTimeout: time.Duration(embed.NewConfig().ElectionMs) * time.Millisecond,
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	// Proxies first: their ports are bound here, for good, and every
	// member's configuration names all of them.
	for i := range n {
		c.cut[i] = make([]bool, n)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("chaos: peer proxy listen: %w", err)
		}
		m := &member{
			index:     i,
			name:      fmt.Sprintf("%s-%d", c.token, i),
			clientURL: loopbackURL(ports[2*i]),
			peerURL:   loopbackURL(ports[2*i+1]),
			proxyURL:  url.URL{Scheme: "http", Host: ln.Addr().String()},
			logger:    logger.With("component", "etcd", "member", i),
		}
		m.dir = filepath.Join(dir, m.name)
		m.proxy = newPeerProxy(ln, i, m.peerURL.Host, func(fromID string) bool { return c.linkUp(fromID, i) },
			c.logger.With("proxy", i))
		c.members = append(c.members, m)
	}
	for _, m := range c.members {
		r, err := c.startEtcd(m)
		if err != nil {
			return nil, fmt.Errorf("chaos: start member %d: %w", m.index, err)
		}
		c.mu.Lock()
		m.run = r
		c.mu.Unlock()
		c.faultMu.Lock()
		c.ids[r.etcd.Server.MemberID().String()] = m.index
		c.faultMu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, clusterReadyTimeout)
	defer cancel()
	for _, m := range c.members {
		select {
		case <-m.run.etcd.Server.ReadyNotify():
		case err := <-m.run.etcd.Err():
			return nil, fmt.Errorf("chaos: member %d failed before ready: %w", m.index, err)
		case <-ctx.Done():
			return nil, fmt.Errorf("chaos: member %d not ready: %w", m.index, ctx.Err())
		}
	}
	c.logger.Info("etcd cluster started", "members", n, "endpoints", c.Endpoints())
	return c, nil
}

// startEtcd starts m. The configuration is the same at every start of m:
// etcd ignores the initial cluster once the member has a WAL.
func (c *Cluster) startEtcd(m *member) (*incarnation, error) {
	r := &incarnation{}
	cfg := c.config(m, &r.stopping)
	cfg.ServiceRegister = r.addServer
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	r.etcd = e
	return r, nil
}

// config is a fresh configuration for m (embed.StartEtcd mutates the one
// it is given).
func (c *Cluster) config(m *member, quiet *atomic.Bool) *embed.Config {
	initial := make([]string, len(c.members))
	for i, o := range c.members {
		initial[i] = o.name + "=" + o.proxyURL.String()
	}
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenClientUrls = []url.URL{m.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{m.clientURL}
	cfg.ListenPeerUrls = []url.URL{m.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.proxyURL}
	cfg.InitialCluster = strings.Join(initial, ",")
	cfg.InitialClusterToken = c.token
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(etcdtest.NewSlogCore(m.logger, quiet)))
	return cfg
}

// Size is the number of members.
func (c *Cluster) Size() int { return len(c.members) }

// ClientURL is member i's client URL, "http://127.0.0.1:PORT". It does not
// change across Kill and Restart.
func (c *Cluster) ClientURL(i int) string { return c.members[i].clientURL.String() }

// Endpoints are every member's client URL, in member order.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i := range c.members {
		out[i] = c.ClientURL(i)
	}
	return out
}

// ElectionTimeout is the raft election timeout the members run with
// (embed's default, 1s, with 100ms heartbeats).
func (c *Cluster) ElectionTimeout() time.Duration { return c.electionTimeout }

// Running says whether member i runs (it may still be without a leader).
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].run != nil
}

// Leader is the index of the raft leader, -1 if no running member knows
// one. Members may disagree for a moment (an isolated leader steps down
// only after an election timeout); the one with the highest term wins.
func (c *Cluster) Leader() int {
	leader, term := -1, uint64(0)
	for i := range c.members {
		e := c.running(i)
		if e == nil {
			continue
		}
		t := e.Server.Term()
		if l := c.indexOf(e.Server.Leader().String()); l >= 0 && (leader < 0 || t > term) {
			leader, term = l, t
		}
	}
	return leader
}

// LeaderOf is the index of the leader member i follows, -1 if it knows
// none or is not running.
func (c *Cluster) LeaderOf(i int) int {
	e := c.running(i)
	if e == nil {
		return -1
	}
	return c.indexOf(e.Server.Leader().String())
}

// CutLink drops all traffic between members i and j, both ways: their
// connections are reset and new ones refused. Idempotent.
func (c *Cluster) CutLink(i, j int) { c.setLink(i, j, true) }

// MendLink ends CutLink (and Isolate, for this one link). Idempotent.
func (c *Cluster) MendLink(i, j int) { c.setLink(i, j, false) }

func (c *Cluster) setLink(i, j int, cut bool) {
	if i == j {
		return
	}
	c.faultMu.Lock()
	c.cut[i][j], c.cut[j][i] = cut, cut
	c.faultMu.Unlock()
	if cut {
		c.members[i].proxy.enforce()
		c.members[j].proxy.enforce()
	}
	c.logger.Info("peer link", "a", i, "b", j, "cut", cut)
}

// Isolate cuts every link of member i, and the header-less requests to it,
// while its clients still reach it. Idempotent.
func (c *Cluster) Isolate(i int) { c.setIsolated(i, true) }

// Rejoin mends every link of member i, also those cut one by one with
// CutLink. Idempotent.
func (c *Cluster) Rejoin(i int) { c.setIsolated(i, false) }

func (c *Cluster) setIsolated(i int, cut bool) {
	c.faultMu.Lock()
	c.isolated[i] = cut
	for j := range c.members {
		if j != i {
			c.cut[i][j], c.cut[j][i] = cut, cut
		}
	}
	c.faultMu.Unlock()
	if cut {
		for _, m := range c.members {
			m.proxy.enforce()
		}
	}
	c.logger.Info("peer isolation", "member", i, "isolated", cut)
}

// linkUp says whether traffic from the member with ID fromID ("" or an
// ID not known yet: an unknown source) may reach member to.
func (c *Cluster) linkUp(fromID string, to int) bool {
	c.faultMu.Lock()
	defer c.faultMu.Unlock()
	if c.down[to] {
		return false
	}
	from, ok := c.ids[fromID]
	if !ok {
		return !c.isolated[to]
	}
	return !c.cut[from][to]
}

// indexOf maps a member ID in hex to its index, -1 for none (e.g. "0").
func (c *Cluster) indexOf(id string) int {
	c.faultMu.Lock()
	defer c.faultMu.Unlock()
	if i, ok := c.ids[id]; ok {
		return i
	}
	return -1
}

// running is member i's etcd, nil while it is killed.
func (c *Cluster) running(i int) *embed.Etcd {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.members[i].run; r != nil {
		return r.etcd
	}
	return nil
}

// Kill stops member i abruptly, like a crash: raft stops at once (a leader
// hands its leadership to no one), its client connections and its peers'
// connections to it are closed, then its listeners. It takes milliseconds
// where embed's Close alone would let open client streams hold it up for
// etcd's request timeout (7s). The data directory is kept. Killing a
// stopped member does nothing.
func (c *Cluster) Kill(i int) error { return c.kill(i, nil) }

// kill kills member i, or does nothing unless its incarnation is only
// (when only is not nil).
func (c *Cluster) kill(i int, only *incarnation) error {
	m := c.members[i]
	m.op.Lock()
	defer m.op.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	r := m.run
	if r == nil || (only != nil && r != only) {
		c.mu.Unlock()
		return nil
	}
	m.run = nil
	c.mu.Unlock()
	c.setDown(i, true)
	if !c.stop(r) {
		return fmt.Errorf("chaos: member %d did not stop within %s", i, memberStopTimeout)
	}
	c.logger.Info("member killed", "member", i)
	return nil
}

// Restart starts member i again with the same name, data directory and
// ports (a running member is killed first), then waits until it is ready:
// it has joined a quorum and serves clients. It returns nil then; it
// returns ErrNotReady, with the member left running, if that takes longer
// than ctx allows or 5s, as it does while the cluster has no quorum. Any
// other error leaves the member stopped.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	m := c.members[i]
	r, err := c.startMember(ctx, m)
	if err != nil {
		return err
	}
	e := r.etcd
	wait, cancel := context.WithTimeout(ctx, restartReadyWait)
	defer cancel()
	select {
	case <-e.Server.ReadyNotify():
		c.logger.Info("member restarted", "member", i)
		return nil
	case <-wait.Done():
		return fmt.Errorf("%w: member %d (waited up to %s)", ErrNotReady, i, restartReadyWait)
	case <-e.Server.StopNotify():
		return fmt.Errorf("chaos: member %d stopped before ready", i)
	case err, ok := <-e.Err():
		if !ok || err == nil { // closed by a concurrent Kill or Close
			return fmt.Errorf("chaos: member %d stopped before ready", i)
		}
		_ = c.kill(i, r)
		return fmt.Errorf("chaos: member %d failed before ready: %w", i, err)
	}
}

// startMember (re)starts m and registers it; it holds m.op only while
// starting, so a concurrent Kill or Close can stop a member that is not
// ready yet.
func (c *Cluster) startMember(ctx context.Context, m *member) (*incarnation, error) {
	m.op.Lock()
	defer m.op.Unlock()
	c.mu.Lock()
	closed, old := c.closed, m.run
	m.run = nil
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if old != nil {
		c.setDown(m.index, true)
		if !c.stop(old) {
			return nil, fmt.Errorf("chaos: member %d did not stop within %s", m.index, memberStopTimeout)
		}
	}
	var r *incarnation
	deadline := time.Now().Add(rebindWait)
	for {
		var err error
		r, err = c.startEtcd(m)
		if err == nil {
			break
		}
		if !etcdtest.IsAddrInUse(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("chaos: restart member %d: %w", m.index, err)
		}
		select { // its ports are fixed: wait for them to be free again
		case <-ctx.Done():
			return nil, fmt.Errorf("chaos: restart member %d: %w (%w)", m.index, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.setDown(m.index, false)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.stop(r)
		return nil, ErrClosed
	}
	m.run = r
	c.mu.Unlock()
	return r, nil
}

// setDown marks member i killed or not. Its peers' connections to a killed
// member are reset at once, as a crashed process's would be, rather than
// when embed's Close gets to them (it gives them a second).
func (c *Cluster) setDown(i int, down bool) {
	c.faultMu.Lock()
	c.down[i] = down
	c.faultMu.Unlock()
	if down {
		c.members[i].proxy.enforce()
	}
}

// stop stops r abruptly (see Kill), bounded; false if it is still stopping.
func (c *Cluster) stop(r *incarnation) bool {
	r.stopping.Store(true)
	done := make(chan struct{})
	c.stopping.Add(1)
	go func() {
		defer c.stopping.Done()
		defer close(done)
		// HardStop first: Close alone would have a leader transfer its
		// leadership, a graceful handover no crash performs. Close then
		// finds the transport stopped and skips the transfer.
		r.etcd.Server.HardStop()
		// Close alone would also let open client streams (watches, lease
		// keepalives) hang on for etcd's request timeout, 7s; a crashed
		// process's connections end at once.
		for _, s := range r.grpcServers() {
			s.Stop()
		}
		r.etcd.Close()
	}()
	select {
	case <-done:
		return true
	case <-time.After(memberStopTimeout):
		return false
	}
}

// Close stops every member at once (stopped one by one, the last ones
// would wait for a quorum that is gone) and every proxy, bounded.
// Idempotent; the data directories are kept.
func (c *Cluster) Close() {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	var running []*incarnation
	for _, m := range c.members {
		if m.run != nil {
			running = append(running, m.run)
			m.run = nil
		}
	}
	c.mu.Unlock()
	if already {
		return
	}
	for i := range c.members {
		c.setDown(i, true)
	}
	var wg sync.WaitGroup
	for _, r := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !c.stop(r) {
				c.logger.Error("member did not stop", "name", r.etcd.Config().Name, "timeout", memberStopTimeout)
			}
		}()
	}
	wg.Wait()
	for _, m := range c.members {
		m.proxy.close()
	}
	// Stops that timed out above, or in Kill, may still be running.
	done := make(chan struct{})
	go func() { c.stopping.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(memberStopTimeout):
		c.logger.Error("members still stopping after Close", "timeout", memberStopTimeout)
	}
	c.logger.Info("etcd cluster closed")
}

// freePorts returns n distinct loopback ports that were free a moment ago,
// outside the kernel's ephemeral range when it can tell it: while a member
// is down, a port in that range can become the source port of an outgoing
// connection (its peers redial every 100ms), and the member could not
// restart on it. All n listeners are open together so the ports differ.
func freePorts(n int) ([]int, error) {
	lo, hi := stablePortRange()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi > lo && tries < 100*n {
			addr = fmt.Sprintf("127.0.0.1:%d", lo+mathrand.IntN(hi-lo))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if addr != "127.0.0.1:0" {
				continue // taken: try another
			}
			return nil, fmt.Errorf("chaos: pick a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// stablePortRange is [lo, hi), the non-ephemeral ports below the kernel's
// ephemeral range (Linux), or lo == hi if unknown.
func stablePortRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	var first, last int
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil {
		return 0, 0
	}
	const lowest = 10000 // above the well-known and most registered services' ports
	if first-lowest < 1000 {
		return 0, 0
	}
	return lowest, first
}

func loopbackURL(port int) url.URL { return etcdtest.LoopbackURL(port) }
