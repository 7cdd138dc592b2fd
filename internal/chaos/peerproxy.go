package chaos

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

const (
	// peerDialTimeout bounds the dial to the member's own peer listener; a
	// failed dial (the member is down) closes the accepted connection.
	peerDialTimeout = 2 * time.Second
	peerBufSize     = 32 << 10
)

// peerProxy is a TCP proxy in front of one member's peer listener: the
// member advertises the proxy's address as its peer URL, so every peer
// connection to it passes here and can be cut.
//
// It reads each HTTP request a peer sends to learn the source member from
// the X-Server-From header that rafthttp puts on its stream GETs, pipeline
// and snapshot POSTs, and forwards the request re-encoded. Every request is
// read, not only the first, because rafthttp's pipeline transport reuses
// connections and its prober (no header) shares that transport: a
// connection may carry a probe first and raft messages after it. A
// connection keeps the source it was last seen with, since each member
// dials with its own transports. Requests without the header (probes,
// lease renewals forwarded to the leader, version checks) come from an
// unknown source. Responses are copied back byte for byte.
type peerProxy struct {
	self   int    // index of the member behind the proxy
	target string // the member's real peer address, "127.0.0.1:PORT"
	ln     net.Listener
	logger *slog.Logger
	// admit says whether traffic from the member with this ID (the
	// X-Server-From value, "" if none yet) may reach this member now. The
	// ID is resolved at each call, not once per connection, so connections
	// made before the cluster knew every member's ID are judged correctly.
	admit func(fromID string) bool

	ctx    context.Context // cancelled by close; aborts dials
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[*peerConn]string // connection -> its X-Server-From as last seen
}

// newPeerProxy serves on ln and forwards to target until close.
func newPeerProxy(ln net.Listener, self int, target string, admit func(fromID string) bool, logger *slog.Logger) *peerProxy {
	ctx, cancel := context.WithCancel(context.Background())
	p := &peerProxy{
		self:   self,
		target: target,
		ln:     ln,
		logger: logger,
		admit:  admit,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[*peerConn]string),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p
}

// addr is the proxy's address, "127.0.0.1:PORT".
func (p *peerProxy) addr() string { return p.ln.Addr().String() }

// enforce resets every connection whose source admit no longer lets
// through. Call it after changing what admit answers: a connection that
// learns its source later is checked against the new answer itself.
func (p *peerProxy) enforce() {
	p.mu.Lock()
	sources := maps.Clone(p.conns)
	p.mu.Unlock()
	cut := 0
	for pc, from := range sources {
		if !p.admit(from) {
			pc.close(true)
			cut++
		}
	}
	if cut > 0 {
		p.logger.Debug("peer connections cut", "to", p.self, "count", cut)
	}
}

// close stops listening, closes every connection and waits until all the
// proxy's goroutines have ended. Idempotent; bounded because closing the
// sockets unblocks every read, write and dial.
func (p *peerProxy) close() {
	p.mu.Lock()
	wasClosed := p.closed
	p.closed = true
	all := make([]*peerConn, 0, len(p.conns))
	for pc := range p.conns {
		all = append(all, pc)
	}
	p.mu.Unlock()
	if !wasClosed {
		p.cancel()
		_ = p.ln.Close()
		for _, pc := range all {
			pc.close(false)
		}
	}
	p.wg.Wait()
}

func (p *peerProxy) acceptLoop() {
	defer p.wg.Done()
	etcdtest.AcceptLoop(p.ctx, p.ln, &p.wg, p.serve)
}

// serve forwards one accepted connection, request by request towards the
// member and as raw bytes back, until either side ends or it is cut.
func (p *peerProxy) serve(client net.Conn) {
	pc := &peerConn{client: client}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = client.Close()
		return
	}
	p.conns[pc] = ""
	p.mu.Unlock()
	var responses sync.WaitGroup
	defer func() {
		// Both sides at once: the response copy may be blocked reading an
		// idle member connection.
		pc.close(false)
		responses.Wait()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()

	from := ""
	br := bufio.NewReaderSize(client, peerBufSize)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return // the peer closed, or it is not HTTP
		}
		if f := req.Header.Get("X-Server-From"); f != "" && f != from {
			from = f
			// Recorded before admit is asked, so a cut made in between is
			// enforced on this connection by enforce or by the check below.
			p.mu.Lock()
			p.conns[pc] = from
			p.mu.Unlock()
		}
		if !p.admit(from) {
			p.logger.Debug("peer connection refused", "from", from, "to", p.self, "path", req.URL.Path)
			pc.close(true)
			return
		}
		upstream := pc.upstreamConn()
		if upstream == nil {
			if upstream = p.dial(pc); upstream == nil {
				return
			}
			responses.Add(1)
			go func() {
				defer responses.Done()
				_, _ = io.CopyBuffer(client, upstream, make([]byte, peerBufSize))
				pc.close(false) // the member ended the connection
			}()
		}
		if err := req.Write(upstream); err != nil {
			return
		}
	}
}

// dial connects pc to the member; nil if the member is down or pc was
// closed meanwhile.
func (p *peerProxy) dial(pc *peerConn) net.Conn {
	ctx, cancel := context.WithTimeout(p.ctx, peerDialTimeout)
	defer cancel()
	var d net.Dialer
	upstream, err := d.DialContext(ctx, "tcp", p.target)
	if err != nil || !pc.setUpstream(upstream) {
		return nil
	}
	return upstream
}

// peerConn is one peer's connection and its connection to the member.
type peerConn struct {
	client net.Conn

	mu       sync.Mutex
	upstream net.Conn // nil until the first admitted request
	closed   bool
}

func (pc *peerConn) upstreamConn() net.Conn {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.upstream
}

func (pc *peerConn) setUpstream(c net.Conn) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		_ = c.Close()
		return false
	}
	pc.upstream = c
	return true
}

// close closes both sides; with rst both are reset (SO_LINGER 0), as a
// partition that drops the connection would look to each end. Idempotent.
func (pc *peerConn) close(rst bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return
	}
	pc.closed = true
	for _, c := range []net.Conn{pc.client, pc.upstream} {
		if c == nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok && rst {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}
