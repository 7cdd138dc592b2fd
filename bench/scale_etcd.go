package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// Bounds of the scale bench's etcd cluster.
const (
	// memberReadyTimeout bounds the wait until every member answers.
	memberReadyTimeout = 60 * time.Second
	// memberStopGrace is how long a member gets after SIGTERM before SIGKILL.
	memberStopGrace = 10 * time.Second
)

// etcdProcs is a 3-member etcd cluster, each member a process of the
// etcdmember command.
type etcdProcs struct {
	members []*etcdProc
}

type etcdProc struct {
	name      string
	clientURL string
	cmd       *exec.Cmd
	done      chan struct{}
}

// buildEtcdMember compiles bench/etcdmember into dir.
func buildEtcdMember(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "etcdmember")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./bench/etcdmember")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./bench/etcdmember: %v\n%s", err, out)
	}
	return bin, nil
}

// startEtcdProcs starts three members on loopback ports with a static
// initial cluster, data and logs under dir, and waits until each answers.
func startEtcdProcs(ctx context.Context, bin, dir string, pprof bool) (*etcdProcs, error) {
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	names := []string{"m1", "m2", "m3"}
	var initial []string
	for i, n := range names {
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", n, ports[3+i]))
	}
	e := &etcdProcs{}
	for i, n := range names {
		p := &etcdProc{name: n, clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[i]), done: make(chan struct{})}
		args := []string{"-name", n, "-dir", filepath.Join(dir, n+".etcd"),
			"-client", p.clientURL, "-peer", fmt.Sprintf("http://127.0.0.1:%d", ports[3+i]),
			"-initial-cluster", strings.Join(initial, ",")}
		if pprof {
			args = append(args, "-pprof")
		}
		p.cmd = exec.Command(bin, args...)
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		logf, err := os.Create(filepath.Join(dir, n+".log"))
		if err != nil {
			e.close()
			return nil, err
		}
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		if err := p.cmd.Start(); err != nil {
			logf.Close()
			e.close()
			return nil, fmt.Errorf("start etcd member %s: %w", n, err)
		}
		go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
		e.members = append(e.members, p)
	}
	if err := e.waitReady(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *etcdProcs) endpoints() []string {
	var out []string
	for _, m := range e.members {
		out = append(out, m.clientURL)
	}
	return out
}

func (e *etcdProcs) pids() []int {
	var out []int
	for _, m := range e.members {
		out = append(out, m.cmd.Process.Pid)
	}
	return out
}

// waitReady waits until every member answers a Status call.
func (e *etcdProcs) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, memberReadyTimeout)
	defer cancel()
	cli, err := clientv3.New(etcdtest.ClientConfig(e.members[0].clientURL))
	if err != nil {
		return err
	}
	defer cli.Close()
	for _, m := range e.members {
		for {
			select {
			case <-m.done:
				return fmt.Errorf("etcd member %s exited (see %s.log)", m.name, m.name)
			default:
			}
			cctx, ccancel := context.WithTimeout(ctx, callTimeout)
			st, err := cli.Status(cctx, m.clientURL)
			ccancel()
			if err == nil && st.Leader != 0 {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("etcd member %s not ready after %s: %v", m.name, memberReadyTimeout, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// close stops every member: SIGTERM, then SIGKILL after a grace.
func (e *etcdProcs) close() {
	for _, m := range e.members {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, m := range e.members {
		select {
		case <-m.done:
		case <-time.After(memberStopGrace):
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	}
}

// etcdSample is what one read of the members' /metrics holds, summed
// over the members.
type etcdSample struct {
	// By grpc_method: grpc_server_msg_received_total, the requests (a
	// unary call is one message; on a stream, each renewal or watch
	// request is one), and grpc_server_started_total, the calls and
	// streams opened.
	received, started map[string]float64
	// Histograms: _sum (seconds) and _count.
	fsyncSum, fsyncCount   float64 // etcd_disk_wal_fsync_duration_seconds
	commitSum, commitCount float64 // etcd_disk_backend_commit_duration_seconds
	watchers, watchStreams float64 // etcd_debugging_mvcc_watcher_total, _watch_stream_total
}

// scrapeMember reads one member's /metrics into smp.
func scrapeMember(ctx context.Context, clientURL string, smp *etcdSample) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var body []byte
	err := httpGet(ctx, clientURL+"/metrics", func(r io.Reader) error {
		var err error
		body, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		into *map[string]float64
	}{{"grpc_server_msg_received_total", &smp.received}, {"grpc_server_started_total", &smp.started}} {
		byMethod, err := parseGRPCCounter(bytes.NewReader(body), c.name)
		if err != nil {
			return err
		}
		if *c.into == nil {
			*c.into = map[string]float64{}
		}
		for k, v := range byMethod {
			(*c.into)[k] += v
		}
	}
	for _, h := range []struct {
		name       string
		sum, count *float64
	}{
		{"etcd_disk_wal_fsync_duration_seconds", &smp.fsyncSum, &smp.fsyncCount},
		{"etcd_disk_backend_commit_duration_seconds", &smp.commitSum, &smp.commitCount},
	} {
		sum, count := histogramTotals(body, h.name)
		*h.sum += sum
		*h.count += count
	}
	smp.watchers += unlabelled(body, "etcd_debugging_mvcc_watcher_total")
	smp.watchStreams += unlabelled(body, "etcd_debugging_mvcc_watch_stream_total")
	return nil
}

// unlabelled reads one unlabelled sample; absent reads as 0.
func unlabelled(body []byte, name string) float64 {
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				return v
			}
		}
	}
	return 0
}

// histogramTotals reads name_sum and name_count (unlabelled) from a
// Prometheus text body; absent lines read as 0.
func histogramTotals(body []byte, name string) (sum, count float64) {
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case name + "_sum":
			sum = v
		case name + "_count":
			count = v
		}
	}
	return sum, count
}

// meanSince is the mean of a histogram between two samples, or 0.
func meanSince(sum0, count0, sum1, count1 float64) time.Duration {
	if count1 <= count0 {
		return 0
	}
	return time.Duration((sum1 - sum0) / (count1 - count0) * float64(time.Second))
}

// parseGRPCCounter sums the counter named (a grpc_server_* one) by its
// grpc_method label.
func parseGRPCCounter(r io.Reader, counter string) (map[string]float64, error) {
	name := counter + "{"
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		method := "?"
		if _, rest, ok := strings.Cut(line[:end], `grpc_method="`); ok {
			method, _, _ = strings.Cut(rest, `"`)
		}
		out[method] += v
	}
	return out, sc.Err()
}

// profile fetches a CPU profile of seconds from a member's pprof endpoint.
func fetchProfile(ctx context.Context, clientURL string, seconds int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+30*time.Second)
	defer cancel()
	return httpGet(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", clientURL, seconds), func(r io.Reader) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// httpGet GETs url and hands a 200's body to read; any other status is
// an error naming the url.
func httpGet(ctx context.Context, url string, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return read(resp.Body)
}

// freePorts picks n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
