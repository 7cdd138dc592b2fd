package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// proxyDialTimeout bounds the dial to the target for each accepted
	// connection; a failed dial closes the accepted connection.
	proxyDialTimeout = 2 * time.Second
	// acceptRetryDelay paces the accept loop after a transient error
	// (e.g. too many open files) instead of spinning.
	acceptRetryDelay = 10 * time.Millisecond
	proxyBufSize     = 32 << 10
)

// Proxy is a TCP fault proxy between clients and etcd, for partition tests.
//
// CutOff blackholes traffic: connections stay open but no byte reaches the
// other side, so a client notices only through its own request deadlines
// and gRPC keepalives (see ClientConfig: about 11s, and only with a stream
// open). Heal closes the connections that lived through the cut-off
// (their streams lost bytes, so they cannot be resumed) and forwards new
// ones again. Reset closes every connection at once.
type Proxy struct {
	target   string
	ln       net.Listener
	ctx      context.Context // cancelled by Close; aborts dials
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	accepted atomic.Int64

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[*proxyConn]struct{}
}

// NewProxy listens on 127.0.0.1:0 and forwards to target, given as
// "127.0.0.1:PORT" or as a URL such as "http://127.0.0.1:PORT".
func NewProxy(target string) (*Proxy, error) {
	addr := target
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("etcdtest: proxy target %q: %w", target, err)
		}
		addr = u.Host
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("etcdtest: proxy target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("etcdtest: proxy listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: addr,
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[*proxyConn]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Endpoint returns the proxy's URL, "http://127.0.0.1:PORT".
func (p *Proxy) Endpoint() string { return "http://" + p.ln.Addr().String() }

// Target returns the address the proxy forwards to, "host:port".
func (p *Proxy) Target() string { return p.target }

// Accepted returns how many connections the proxy has accepted so far, so a
// test can tell that a client reconnected.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// CutOff starts a network partition: from now on no byte flows either way
// on existing connections (they stall, they are not closed), and new
// connections are accepted but forwarded nothing. Idempotent.
func (p *Proxy) CutOff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for pc := range p.conns {
		pc.stalled.Store(true)
	}
}

// Heal ends a partition: the connections that lived through it are closed,
// so clients reconnect cleanly, and new connections are forwarded again.
// Idempotent.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	var stalled []*proxyConn
	for pc := range p.conns {
		if pc.stalled.Load() {
			stalled = append(stalled, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range stalled {
		pc.close(false)
	}
}

// Reset closes every current connection at once with a TCP RST and keeps
// accepting new ones (in the current cut-off state).
func (p *Proxy) Reset() {
	p.mu.Lock()
	all := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		all = append(all, pc)
	}
	p.mu.Unlock()
	for _, pc := range all {
		pc.close(true)
	}
}

// Close stops listening, closes every connection and waits until all the
// proxy's goroutines have ended. Idempotent; bounded because closing the
// sockets unblocks every read, write and dial.
func (p *Proxy) Close() {
	p.mu.Lock()
	wasClosed := p.closed
	p.closed = true
	all := make([]*proxyConn, 0, len(p.conns))
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

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	AcceptLoop(p.ctx, p.ln, &p.wg, func(c net.Conn) {
		p.accepted.Add(1)
		p.serve(c)
	})
}

// AcceptLoop accepts on ln until it is closed or ctx ends, handing each
// connection to serve on its own goroutine counted in wg. A transient
// error (e.g. too many open files) pauses it briefly instead of spinning.
// The fault campaign's peer proxy shares it.
func AcceptLoop(ctx context.Context, ln net.Listener, wg *sync.WaitGroup, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(acceptRetryDelay):
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(c)
		}()
	}
}

// serve forwards one accepted connection until either side ends or the
// proxy closes it.
func (p *Proxy) serve(client net.Conn) {
	pc := &proxyConn{client: client}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = client.Close()
		return
	}
	pc.stalled.Store(p.cut)
	p.conns[pc] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
		pc.close(false)
	}()

	if pc.stalled.Load() {
		// Accepted during a cut-off: do not reach the target at all, swallow
		// what the client sends until Heal, Reset or Close ends it.
		pc.pump(nil, client)
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, proxyDialTimeout)
	var d net.Dialer
	upstream, err := d.DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil || !pc.setUpstream(upstream) {
		return // target down, or the connection was closed meanwhile
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		pc.pump(client, upstream)
		pc.close(false)
	}()
	pc.pump(upstream, client)
	pc.close(false)
	<-done
}

// proxyConn is one client connection and its connection to the target.
type proxyConn struct {
	client  net.Conn
	stalled atomic.Bool // set by CutOff: read and discard instead of forwarding

	mu       sync.Mutex
	upstream net.Conn // nil until dialled; never dialled during a cut-off
	closed   bool
}

func (pc *proxyConn) setUpstream(c net.Conn) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		_ = c.Close()
		return false
	}
	pc.upstream = c
	return true
}

// close closes both sides; with rst the client side is reset (SO_LINGER 0)
// rather than closed gracefully. Idempotent.
func (pc *proxyConn) close(rst bool) {
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

// pump copies src to dst until src fails, dropping the bytes while the
// connection is stalled. dst may be nil: drop everything.
func (pc *proxyConn) pump(dst, src net.Conn) {
	buf := make([]byte, proxyBufSize)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !pc.stalled.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
