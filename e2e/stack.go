//go:build e2e

// Package e2e drives the docker compose stack of docker-compose.yml (three
// etcd members, three demo apps, one leaderd sidecar per app) and checks
// leaderd's behaviour across containers. Run it with `make e2e`, which
// builds the images, brings the stack up, runs this package with
// `-tags e2e`, and always tears the stack down. Against a stack that is
// already up (`make compose-up`):
//
//	go test -tags e2e -count=1 -v ./e2e/
//
// The files:
//
//	stack.go     Open, the compose runner, container ids and ports
//	faults.go    kill, stop, start, pause, network disconnect: bounded wrappers
//	probe.go     the sidecars' HTTP API, the apps' API, WaitFor
//	timeline.go  the hooks' shared timeline, tenures, fencing-token order
//	hooklog.go   the precise hook timeline, from the sidecars' logs
//	monitor.go   samples the three sidecars' /primary every 50ms
//	writer.go    keeps writing to the primary's app; checks the acks' tokens
//	report.go    the table of measured figures (printed; $E2E_REPORT)
//
// The tests: compose_test.go (TestBringUp, on the fresh stack) and
// failover_test.go (TestFailover: kill, stop, network disconnect, pause,
// etcd member and quorum loss, rolling restart, in that order, with the
// monitor and the writer running throughout).
//
// Topology to keep in mind when adding fault scenarios: leaderdN shares
// appN's network namespace (network_mode "service:appN"). Disconnecting
// appN from the network cuts both off; killing or stopping appN leaves
// leaderdN in a namespace without a network, and a restarted appN gets a
// new namespace that a still-running leaderdN does not join, so restart a
// replica with StartReplica (app first, then the sidecar).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Timeouts of the docker commands: every call is bounded, so a wedged
// engine fails a test instead of hanging it.
const (
	// CommandTimeout bounds one docker or compose command.
	CommandTimeout = 30 * time.Second
	// UpTimeout bounds `compose up -d` (images are local: no pulls).
	UpTimeout = 2 * time.Minute
)

// Settings of docker-compose.yml the tests reason with.
const (
	// TTL is LEADERD_TTL.
	TTL = 4 * time.Second
	// DemoteTimeout is LEADERD_DEMOTE_TIMEOUT.
	DemoteTimeout = time.Second
	// StepDownLead is how long before its lease's deadline (last renewal
	// sent + TTL) a primary steps down: the demote timeout plus the margin
	// max(500ms, TTL/10) (docs/design.md, "The lease guard"; leaderd logs it as
	// step_down_lead at start).
	StepDownLead = DemoteTimeout + 500*time.Millisecond
	// Election is LEADERD_ELECTION.
	Election = "demo"
	// TimelinePath is HOOK_TIMELINE inside the sidecars (a volume shared by
	// the three of them).
	TimelinePath = "/var/lib/leaderd/timeline"
)

// Replica is one app and its sidecar.
type Replica struct {
	N       int    // 1, 2, 3
	ID      string // leaderd's --id: "app1"
	App     string // compose service of the app: "app1"
	Sidecar string // compose service of leaderd: "leaderd1"
	AppURL  string // the app's published port: "http://127.0.0.1:8081"
	APIURL  string // leaderd's HTTP API, published by the app: "http://127.0.0.1:18001"
}

// Stack is a running compose project.
type Stack struct {
	compose  []string // "docker compose" or "docker-compose"
	file     string   // absolute path of docker-compose.yml
	project  string
	network  string            // the network the apps and etcd members share
	ids      map[string]string // service -> container id
	Replicas []Replica         // Replicas[0] is replica 1
	Etcd     []string          // "etcd1", "etcd2", "etcd3"
}

// Open finds the running stack: project $COMPOSE_PROJECT_NAME (default
// "leaderd", as scripts/compose.sh) from ../docker-compose.yml. It skips the
// test when no Docker engine answers or no compose is installed, and fails
// it when the stack is not up.
func Open(t testing.TB) *Stack {
	t.Helper()
	ctx := context.Background()
	if _, err := run(ctx, CommandTimeout, "docker", "info"); err != nil {
		t.Skipf("e2e: no Docker engine answers (docker info failed): %v", err)
	}
	compose, err := findCompose(ctx)
	if err != nil {
		t.Skipf("e2e: %v", err)
	}
	file, err := filepath.Abs(filepath.Join("..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	project := os.Getenv("COMPOSE_PROJECT_NAME")
	if project == "" {
		project = "leaderd"
	}
	s := &Stack{compose: compose, file: file, project: project, Etcd: []string{"etcd1", "etcd2", "etcd3"}}
	if err := s.Refresh(ctx); err != nil {
		t.Fatalf("e2e: the compose stack (project %q) is not up: %v\n"+
			"run `make e2e`, or `make compose-up` and then go test -tags e2e ./e2e/", project, err)
	}
	return s
}

// findCompose prefers $COMPOSE_CMD (set by scripts/e2e.sh), then the v2
// plugin, then docker-compose v1.
func findCompose(ctx context.Context) ([]string, error) {
	if c := strings.Fields(os.Getenv("COMPOSE_CMD")); len(c) > 0 {
		return c, nil
	}
	if _, err := run(ctx, CommandTimeout, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}, nil
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, errors.New("neither `docker compose` nor `docker-compose` is installed")
}

// Refresh looks up the containers, the network and the published ports
// again. Needed only after containers were re-created (Up with changes,
// Down then Up); kill, stop, start, pause keep the containers. It asks
// docker, not compose, by the labels both compose versions set: one fast
// call instead of a (slow, with v1) compose call per service.
func (s *Stack) Refresh(ctx context.Context) error {
	out, err := run(ctx, CommandTimeout, "docker", "ps", "-a", "--no-trunc",
		"--filter", "label=com.docker.compose.project="+s.project,
		"--format", `{{.ID}} {{.Label "com.docker.compose.service"}}`)
	if err != nil {
		return err
	}
	s.ids = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		id, svc, _ := strings.Cut(line, " ")
		if svc == "" {
			continue
		}
		if _, dup := s.ids[svc]; dup {
			return fmt.Errorf("service %s has more than one container (scaled? leftovers? try compose down)", svc)
		}
		s.ids[svc] = id
	}
	services := append([]string{}, s.Etcd...)
	for n := 1; n <= 3; n++ {
		services = append(services, fmt.Sprintf("app%d", n), fmt.Sprintf("leaderd%d", n))
	}
	for _, svc := range services {
		if s.ids[svc] == "" {
			return fmt.Errorf("service %s has no container", svc)
		}
	}

	s.Replicas = nil
	for n := 1; n <= 3; n++ {
		r := Replica{N: n, ID: fmt.Sprintf("app%d", n), App: fmt.Sprintf("app%d", n), Sidecar: fmt.Sprintf("leaderd%d", n)}
		var info []struct {
			NetworkSettings struct {
				Networks map[string]any
				Ports    map[string][]struct{ HostIp, HostPort string }
			}
			HostConfig struct {
				PortBindings map[string][]struct{ HostIp, HostPort string }
			}
		}
		out, err := run(ctx, CommandTimeout, "docker", "inspect", s.ids[r.App])
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &info); err != nil || len(info) != 1 {
			return fmt.Errorf("docker inspect %s: %v", r.App, err)
		}
		// The configured bindings: they are known even while the container
		// is stopped (the live Ports map is then empty).
		bindings := info[0].HostConfig.PortBindings
		url := func(port string) (string, error) {
			for _, b := range bindings[port+"/tcp"] {
				if b.HostPort != "" {
					host := b.HostIp
					if host == "" || host == "0.0.0.0" {
						host = "127.0.0.1"
					}
					return "http://" + net.JoinHostPort(host, b.HostPort), nil
				}
			}
			return "", fmt.Errorf("port %s of %s is not published", port, r.App)
		}
		if r.AppURL, err = url("8080"); err != nil {
			return err
		}
		if r.APIURL, err = url("8008"); err != nil {
			return err
		}
		if n == 1 {
			for name := range info[0].NetworkSettings.Networks {
				s.network = name
			}
			if s.network == "" {
				return errors.New("app1 is on no network (disconnected?)")
			}
		}
		s.Replicas = append(s.Replicas, r)
	}
	return nil
}

// ID is the container id of a compose service.
func (s *Stack) ID(service string) string {
	id, ok := s.ids[service]
	if !ok {
		panic("e2e: unknown service " + service)
	}
	return id
}

// Compose runs `docker compose -f docker-compose.yml -p <project> args...`,
// bounded by timeout, and returns its stdout.
func (s *Stack) Compose(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	argv := append(append([]string{}, s.compose...), "-f", s.file, "-p", s.project)
	return run(ctx, timeout, argv[0], append(argv[1:], args...)...)
}

// Logs returns the last tail lines of the services' logs (all when none).
func (s *Stack) Logs(ctx context.Context, tail int, services ...string) (string, error) {
	return s.Compose(ctx, CommandTimeout, append([]string{"logs", "--no-color", "--tail", fmt.Sprint(tail)}, services...)...)
}

// DumpLogsOnFailure logs the stack's recent logs and the hook timeline when
// t has failed, for diagnosis.
func (s *Stack) DumpLogsOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx := context.Background()
		if logs, err := s.Logs(ctx, 60); err == nil {
			t.Logf("compose logs (last 60 lines per service):\n%s", logs)
		}
		if tl, err := s.rawTimeline(ctx); err == nil {
			t.Logf("hook timeline:\n%s", tl)
		}
	})
}

// run runs a command bounded by timeout and returns its stdout; a failure's
// error carries stderr.
func run(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second // do not wait forever on orphaned pipes
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("%s %s: timed out after %s", name, strings.Join(args, " "), timeout)
	case err != nil:
		err = fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}
