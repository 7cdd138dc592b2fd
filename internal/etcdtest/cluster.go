package etcdtest

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is an embedded etcd cluster of several members on loopback
// ports, for tests that cut one member off from its peers while its
// clients still reach it.
type Cluster struct {
	members []*embed.Etcd
	clients []url.URL

	mu sync.Mutex // serialises Isolate and Rejoin
}

// StartCluster starts an n-member cluster with its data in t.TempDir(),
// waits until every member serves clients (bounded by a 30s cap) and
// closes it at t.Cleanup. Like StartServer, it picks new ports when
// another process took one between choosing and binding it.
func StartCluster(t TB, n int) *Cluster {
	t.Helper()
	var err error
	for attempt := 1; attempt <= bindAttempts; attempt++ {
		var c *Cluster
		c, err = startCluster(t.TempDir(), n)
		if err == nil {
			t.Cleanup(c.close)
			return c
		}
		if !isAddrInUse(err) {
			break
		}
	}
	t.Fatalf("etcdtest: %v", err)
	return nil
}

// startCluster starts n members on fresh ports under dir; on an error it
// closes whatever it started.
func startCluster(dir string, n int) (_ *Cluster, err error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	token := "etcdtest-cluster-" + randomSuffix()
	names := make([]string, n)
	initial := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("%s-%d", token, i)
		peer := loopbackURL(ports[2*i+1])
		initial[i] = names[i] + "=" + peer.String()
	}
	c := &Cluster{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name = names[i]
		cfg.Dir = filepath.Join(dir, names[i])
		client, peer := loopbackURL(ports[2*i]), loopbackURL(ports[2*i+1])
		cfg.ListenClientUrls = []url.URL{client}
		cfg.AdvertiseClientUrls = []url.URL{client}
		cfg.ListenPeerUrls = []url.URL{peer}
		cfg.AdvertisePeerUrls = []url.URL{peer}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = token
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			return nil, fmt.Errorf("start member %d: %w", i, err)
		}
		c.members = append(c.members, e)
		c.clients = append(c.clients, client)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for i, e := range c.members {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			return nil, fmt.Errorf("member %d failed before ready: %w", i, err)
		case <-ctx.Done():
			return nil, fmt.Errorf("member %d not ready after %s", i, readyTimeout)
		}
	}
	return c, nil
}

// Size is the number of members.
func (c *Cluster) Size() int { return len(c.members) }

// Endpoint is member i's client URL.
func (c *Cluster) Endpoint(i int) string { return c.clients[i].String() }

// Leader is the index of the member that member i takes for the leader,
// or -1 while it knows none.
func (c *Cluster) Leader(i int) int {
	lead := c.members[i].Server.Leader()
	for j, e := range c.members {
		if e.Server.MemberID() == lead {
			return j
		}
	}
	return -1
}

// Isolate cuts member i off from its peers, both ways, as etcd's own
// integration tests do: raft messages between them are dropped, while
// member i still serves its clients. It soon loses its leader (if it led,
// the others elect another).
func (c *Cluster) Isolate(i int) { c.setIsolated(i, true) }

// Rejoin ends Isolate.
func (c *Cluster) Rejoin(i int) { c.setIsolated(i, false) }

func (c *Cluster) setIsolated(i int, cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for j, other := range c.members {
		if j == i {
			continue
		}
		if cut {
			c.members[i].Server.CutPeer(other.Server.MemberID())
			other.Server.CutPeer(c.members[i].Server.MemberID())
		} else {
			c.members[i].Server.MendPeer(other.Server.MemberID())
			other.Server.MendPeer(c.members[i].Server.MemberID())
		}
	}
}

// close stops every member at once: stopped one by one, the last ones
// would wait for a quorum that is gone.
func (c *Cluster) close() {
	var wg sync.WaitGroup
	for _, e := range c.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Close()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(readyTimeout):
	}
}
