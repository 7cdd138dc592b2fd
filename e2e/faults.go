//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"time"
)

// Fault injection. Every wrapper takes compose service names ("app1",
// "leaderd1", "etcd2"), acts on their containers with one docker command
// bounded by CommandTimeout (plus the stop grace for Stop), and returns an
// error instead of failing the test, so a scenario can decide. The
// containers are kept (no re-creation), so Stack's ids and ports stay valid.
//
// Which fault models what:
//
//	Kill(ctx, "SIGKILL", "leaderd1")       the sidecar process crashes (app lives)
//	CrashReplica(ctx, r)                   the whole node dies: sidecar and app
//	Stop(ctx, grace, "leaderd1")           graceful shutdown: SIGTERM, SIGKILL after grace
//	Pause(ctx, "leaderd1")                 a frozen process (SIGSTOP-like): cannot demote
//	Disconnect(ctx, r)                     the node is cut off (sidecar and app)
//	Stop/Kill(ctx, ..., "etcd2")           an etcd member lost; two of them: quorum lost
//
// Undo with Start, StartReplica, Unpause and Connect.

// Kill sends signal (e.g. "SIGKILL", "SIGTERM") to the services' containers.
// With init: true the signal goes to docker-init, which forwards it to the
// service's process; SIGKILL kills the container outright.
func (s *Stack) Kill(ctx context.Context, signal string, services ...string) error {
	return s.docker(ctx, CommandTimeout, append([]string{"kill", "--signal", signal}, s.idsOf(services)...)...)
}

// Stop stops the services gracefully: SIGTERM, then SIGKILL after grace.
func (s *Stack) Stop(ctx context.Context, grace time.Duration, services ...string) error {
	secs := fmt.Sprint(int(grace.Round(time.Second) / time.Second))
	return s.docker(ctx, CommandTimeout+grace, append([]string{"stop", "--time", secs}, s.idsOf(services)...)...)
}

// Start starts stopped or killed services (in the order given).
func (s *Stack) Start(ctx context.Context, services ...string) error {
	for _, svc := range services {
		if err := s.docker(ctx, CommandTimeout, "start", s.ID(svc)); err != nil {
			return err
		}
	}
	return nil
}

// Pause freezes every process of the services (cgroup freezer): they keep
// their sockets but run no code, like a stalled VM.
func (s *Stack) Pause(ctx context.Context, services ...string) error {
	return s.docker(ctx, CommandTimeout, append([]string{"pause"}, s.idsOf(services)...)...)
}

// Unpause thaws paused services.
func (s *Stack) Unpause(ctx context.Context, services ...string) error {
	return s.docker(ctx, CommandTimeout, append([]string{"unpause"}, s.idsOf(services)...)...)
}

// CrashReplica SIGKILLs r's sidecar and then its app: the node is gone,
// without a demote hook or a resign.
func (s *Stack) CrashReplica(ctx context.Context, r Replica) error {
	return s.Kill(ctx, "SIGKILL", r.Sidecar, r.App)
}

// StartReplica starts r's app, then (re)starts its sidecar so that the
// sidecar joins the app's new network namespace.
func (s *Stack) StartReplica(ctx context.Context, r Replica) error {
	if err := s.Start(ctx, r.App); err != nil {
		return err
	}
	return s.docker(ctx, CommandTimeout+10*time.Second, "restart", "--time", "10", s.ID(r.Sidecar))
}

// Disconnect cuts r (its app and, sharing its namespace, its sidecar) off
// the stack's network: etcd and the other apps become unreachable. The
// published ports lead through that network too, so the host cannot reach
// r's app or API meanwhile: read r's state with ExecStatus (docker exec
// needs no network), or through the other replicas.
func (s *Stack) Disconnect(ctx context.Context, r Replica) error {
	return s.docker(ctx, CommandTimeout, "network", "disconnect", s.network, s.ID(r.App))
}

// Connect reattaches r to the network under its service name, so that the
// other apps find it again by name.
func (s *Stack) Connect(ctx context.Context, r Replica) error {
	return s.docker(ctx, CommandTimeout, "network", "connect", "--alias", r.App, s.network, s.ID(r.App))
}

// StartedAt is when the service's container was last started.
func (s *Stack) StartedAt(ctx context.Context, service string) (time.Time, error) {
	out, err := run(ctx, CommandTimeout, "docker", "inspect", "-f", "{{.State.StartedAt}}", s.ID(service))
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, firstLine(out))
}

func (s *Stack) idsOf(services []string) []string {
	ids := make([]string, len(services))
	for i, svc := range services {
		ids[i] = s.ID(svc)
	}
	return ids
}

func (s *Stack) docker(ctx context.Context, timeout time.Duration, args ...string) error {
	_, err := run(ctx, timeout, "docker", args...)
	return err
}
