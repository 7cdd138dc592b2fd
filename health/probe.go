package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/leaderd/leaderd/hooks"
)

// probe runs one check: nil means healthy.
type probe interface {
	check(ctx context.Context) error
	close()
}

// maxErrOutput bounds the command output quoted in a check's error.
const maxErrOutput = 200

// commandProbe runs Config.Command through hooks.Runner, so a check gets what
// a hook gets: its own process group, SIGTERM then SIGKILL at the timeout, and
// its output logged line by line.
type commandProbe struct {
	command string
	timeout time.Duration
	log     *slog.Logger
}

func (p *commandProbe) check(ctx context.Context) error {
	out := &lastLine{}
	r := &hooks.Runner{
		Name:    "health",
		Command: p.command,
		Timeout: p.timeout,
		Logger:  slog.New(&debugHandler{inner: p.log.Handler()}),
		Output:  out.set,
	}
	// A check is not a hook: its LEADERD_* variables are set, but empty.
	res := r.Run(ctx, hooks.Env{})
	if res.Err == nil {
		return nil
	}
	if line := out.get(); line != "" {
		return fmt.Errorf("%w; last output: %s", res.Err, line)
	}
	return res.Err
}

func (p *commandProbe) close() {}

// debugHandler passes the hook runner's records on at debug level: a check
// runs every Interval, and the Checker itself logs what matters, the
// transitions.
type debugHandler struct {
	inner slog.Handler
}

func (h *debugHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return h.inner.Enabled(ctx, slog.LevelDebug)
}

func (h *debugHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return h.inner.Handle(ctx, r)
}

func (h *debugHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &debugHandler{inner: h.inner.WithAttrs(attrs)}
}

func (h *debugHandler) WithGroup(name string) slog.Handler {
	return &debugHandler{inner: h.inner.WithGroup(name)}
}

// lastLine is the last non-empty output line of one check, which usually
// says why it failed. The runner reads stdout and stderr on two goroutines.
type lastLine struct {
	mu   sync.Mutex
	line string
}

func (l *lastLine) set(s string) {
	if len(s) > maxErrOutput {
		s = s[:maxErrOutput] + "..."
	}
	if s == "" {
		return
	}
	l.mu.Lock()
	l.line = s
	l.mu.Unlock()
}

func (l *lastLine) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.line
}

// urlProbe fetches Config.URL. Each check dials afresh (no keep-alive): every
// Interval is rare enough, it tests what a new client would meet, and no idle
// connection outlives a check. No proxy from the environment either: the
// app is local, and HTTP_PROXY is meant for the outside world.
type urlProbe struct {
	url       string
	client    *http.Client
	transport *http.Transport
}

func newURLProbe(rawURL string, timeout time.Duration) *urlProbe {
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		DisableKeepAlives:     true,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	return &urlProbe{
		url:       rawURL,
		transport: t,
		// Client.Timeout covers the whole exchange, reading the body included.
		client: &http.Client{Transport: t, Timeout: timeout},
	}
}

// maxBody bounds how much of an answer's body is read before closing it.
const maxBody = 64 << 10

func (p *urlProbe) check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "leaderd-health")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The status is what counts; reading the body (within bounds) lets the
	// server finish its answer cleanly.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", p.url, resp.Status)
	}
	return nil
}

func (p *urlProbe) close() { p.transport.CloseIdleConnections() }
