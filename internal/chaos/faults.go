package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// scope is what a fault kind acts on.
type scope int

const (
	onReplica  scope = iota // one replica, the primary half of the time
	onEtcd                  // etcd members or their links
	onElection              // an operator request to the whole election
)

// healOrder: etcd heals first (an operator's resume needs a quorum), the
// operator's request last.
func (s scope) healOrder() int {
	switch s {
	case onEtcd:
		return 0
	case onReplica:
		return 1
	}
	return 2
}

// kind is one sort of fault: how to inject it, how long to hold it, how
// to undo it. heal is nil for a fault that is over once injected.
type kind struct {
	name   string
	weight int
	scope  scope
	hold   func(r *rand.Rand, ttl time.Duration) time.Duration
	inject func(c *campaign, a *active) error
	heal   func(c *campaign, a *active) error
	// moves: the fault is over once injected but its effect, the primary
	// moving, comes later; recovery is timed from that effect.
	moves bool
}

// active is one injected fault and what its heal needs.
type active struct {
	kind    *kind
	fault   *Fault
	primary string // the replica serving as primary at injection
	node    *node
	members []int
	hold    time.Duration
	// cancelled: a scheduled switchover whose heal cancels it before it is
	// due, so the primary is not expected to move.
	cancelled bool
	stop      chan struct{} // ends a fault's own loop (health flapping)
	done      chan struct{}
}

// between is a uniform duration in [lo, hi) multiples of ttl.
func between(lo, hi float64) func(*rand.Rand, time.Duration) time.Duration {
	return func(r *rand.Rand, ttl time.Duration) time.Duration {
		return time.Duration((lo + r.Float64()*(hi-lo)) * float64(ttl))
	}
}

func instant(*rand.Rand, time.Duration) time.Duration { return 0 }

// kinds is the catalogue. Weights favour the faults that touch the safety
// path (the primary losing its process, its links or its hooks).
var kinds = []*kind{
	{name: "sigkill", weight: 6, scope: onReplica, hold: between(0.2, 1.5),
		inject: func(c *campaign, a *active) error { return c.kill(a.node, syscall.SIGKILL) },
		heal:   func(c *campaign, a *active) error { return c.restart(a.node) }},
	{name: "sigterm", weight: 4, scope: onReplica, hold: between(0.1, 1),
		inject: func(c *campaign, a *active) error { return c.kill(a.node, syscall.SIGTERM) },
		heal:   func(c *campaign, a *active) error { return c.restart(a.node) }},
	{name: "sighup", weight: 2, scope: onReplica, hold: instant,
		inject: func(c *campaign, a *active) error { return a.node.signal(syscall.SIGHUP, false) }},
	{name: "stop-short", weight: 3, scope: onReplica, hold: between(0.2, 0.7),
		inject: func(c *campaign, a *active) error { return c.w.freeze(a.node) },
		heal:   func(c *campaign, a *active) error { c.w.thaw(a.node); return nil }},
	{name: "stop-long", weight: 4, scope: onReplica, hold: between(1.2, 2.5),
		inject: func(c *campaign, a *active) error { return c.w.freeze(a.node) },
		heal:   func(c *campaign, a *active) error { c.w.thaw(a.node); return nil }},
	{name: "restart", weight: 3, scope: onReplica, hold: instant,
		inject: func(c *campaign, a *active) error {
			c.w.stopReplica(a.node, 10*time.Second)
			return c.restart(a.node)
		}},
	{name: "cut-all", weight: 6, scope: onReplica, hold: between(0.5, 2.5),
		inject: func(c *campaign, a *active) error { c.cutLinks(a.node, -1, true); return nil },
		heal:   func(c *campaign, a *active) error { c.cutLinks(a.node, -1, false); return nil }},
	{name: "cut-one", weight: 4, scope: onReplica, hold: between(0.5, 2.5),
		inject: func(c *campaign, a *active) error {
			a.members = []int{c.rand.IntN(c.members())}
			c.cutLinks(a.node, a.members[0], true)
			return nil
		},
		heal: func(c *campaign, a *active) error { c.cutLinks(a.node, a.members[0], false); return nil }},
	{name: "hook-fail", weight: 3, scope: onReplica, hold: between(0.5, 1.5),
		inject: func(c *campaign, a *active) error { return c.hookFault(a, hookPromoteFail, hookDemoteFail) },
		heal:   func(c *campaign, a *active) error { return c.w.setHookMode(a.node, hookOK) }},
	{name: "hook-hang", weight: 3, scope: onReplica, hold: between(0.5, 1.5),
		inject: func(c *campaign, a *active) error { return c.hookFault(a, hookPromoteHang, hookDemoteHang) },
		heal:   func(c *campaign, a *active) error { return c.w.setHookMode(a.node, hookOK) }},
	{name: "hook-flood", weight: 2, scope: onReplica, hold: between(0.5, 1.5),
		inject: func(c *campaign, a *active) error { return c.hookFault(a, hookFlood, hookFlood) },
		heal:   func(c *campaign, a *active) error { return c.w.setHookMode(a.node, hookOK) }},
	{name: "stderr-stall", weight: 3, scope: onReplica, hold: between(1, 2.5),
		inject: func(c *campaign, a *active) error {
			c.w.stallStderr(a.node)
			if a.fault.Primary {
				// The step-down is what must not wait on the stalled log.
				a.fault.Note = "and the primary resigned"
				return c.operator("resign", "--wait", "0")
			}
			return nil
		},
		heal: func(c *campaign, a *active) error { a.node.stall.set(false); return nil }},
	{name: "health-flap", weight: 3, scope: onReplica, hold: between(0.8, 2),
		inject: func(c *campaign, a *active) error {
			a.stop, a.done = make(chan struct{}), make(chan struct{})
			// Its own source: the flapping goroutine must not share c.rand.
			go c.flap(a, rand.New(rand.NewPCG(c.rand.Uint64(), c.rand.Uint64())))
			return nil
		},
		heal: func(c *campaign, a *active) error {
			close(a.stop)
			<-a.done
			return c.w.setUnhealthy(a.node, false)
		}},
	{name: "member-kill", weight: 3, scope: onEtcd, hold: between(0.5, 2.5),
		inject: func(c *campaign, a *active) error {
			a.members = []int{c.rand.IntN(c.members())}
			return c.killMembers(a)
		},
		heal: func(c *campaign, a *active) error { return c.restartMembers(a) }},
	{name: "leader-kill", weight: 3, scope: onEtcd, hold: between(0.5, 2.5),
		inject: func(c *campaign, a *active) error {
			l := c.w.etcd.Leader()
			if l < 0 {
				l = c.rand.IntN(c.members())
				a.fault.Note = "no etcd leader known; killed a random member"
			}
			a.members = []int{l}
			return c.killMembers(a)
		},
		heal: func(c *campaign, a *active) error { return c.restartMembers(a) }},
	{name: "member-isolate", weight: 4, scope: onEtcd, hold: between(0.5, 2.5),
		inject: func(c *campaign, a *active) error {
			m := c.rand.IntN(c.members())
			if l := c.w.etcd.Leader(); l >= 0 && c.rand.IntN(2) == 0 {
				m = l
			}
			a.members = []int{m}
			a.fault.Target = memberName(m)
			c.w.etcd.Isolate(m)
			return nil
		},
		heal: func(c *campaign, a *active) error { c.w.etcd.Rejoin(a.members[0]); return nil }},
	{name: "peer-cut", weight: 2, scope: onEtcd, hold: between(0.5, 2.5),
		inject: func(c *campaign, a *active) error {
			n := c.members()
			i := c.rand.IntN(n)
			a.members = []int{i, (i + 1 + c.rand.IntN(n-1)) % n}
			a.fault.Target = memberName(a.members[0]) + "," + memberName(a.members[1])
			c.w.etcd.CutLink(a.members[0], a.members[1])
			return nil
		},
		heal: func(c *campaign, a *active) error { c.w.etcd.MendLink(a.members[0], a.members[1]); return nil }},
	{name: "quorum-short", weight: 2, scope: onEtcd, hold: between(0.3, 0.7),
		inject: func(c *campaign, a *active) error { return c.loseQuorum(a) },
		heal:   func(c *campaign, a *active) error { return c.regainQuorum(a) }},
	{name: "quorum-long", weight: 2, scope: onEtcd, hold: between(1.3, 2.2),
		inject: func(c *campaign, a *active) error { return c.loseQuorum(a) },
		heal:   func(c *campaign, a *active) error { return c.regainQuorum(a) }},
	{name: "resign", weight: 3, scope: onElection, hold: instant, moves: true,
		inject: func(c *campaign, a *active) error { return c.operator("resign", "--wait", "0") }},
	{name: "switchover", weight: 3, scope: onElection, hold: instant, moves: true,
		inject: func(c *campaign, a *active) error {
			to := c.randomStandby()
			if to == nil {
				a.fault.Note = "no standby running"
				return nil
			}
			a.fault.Target = to.id
			return c.operator("switchover", "--to", to.id, "--wait", "0")
		}},
	{name: "scheduled-switchover", weight: 3, scope: onElection, hold: instant, moves: true,
		inject: func(c *campaign, a *active) error { return c.scheduleSwitchover(a) },
		heal:   func(c *campaign, a *active) error { return c.cancelSwitchover(a) }},
	{name: "pause", weight: 2, scope: onElection, hold: between(0.5, 1.5),
		inject: func(c *campaign, a *active) error { return c.operator("pause") },
		heal:   func(c *campaign, a *active) error { return c.resume() }},
}

func memberName(m int) string { return fmt.Sprintf("member-%d", m) }

func kindByName(name string) *kind {
	for _, k := range kinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

// draw picks a kind by weight, among those allowed.
func draw(r *rand.Rand, allowed func(*kind) bool) *kind {
	total := 0
	for _, k := range kinds {
		if allowed(k) {
			total += k.weight
		}
	}
	x := r.IntN(total)
	for _, k := range kinds {
		if !allowed(k) {
			continue
		}
		if x < k.weight {
			return k
		}
		x -= k.weight
	}
	panic("unreachable")
}

// kill signals n to exit and waits for it, bounded.
func (c *campaign) kill(n *node, sig syscall.Signal) error {
	rep := n.replica()
	if rep == nil {
		return fmt.Errorf("%s is not running", n.id)
	}
	if err := n.signal(sig, true); err != nil {
		return err
	}
	defer n.exited(rep)
	if _, err := rep.Wait(15 * time.Second); err != nil {
		_ = rep.Signal(syscall.SIGKILL)
		<-rep.Done()
		return fmt.Errorf("%s did not exit on %s: %w", n.id, sig, err)
	}
	return nil
}

// restart starts n again unless it is running.
func (c *campaign) restart(n *node) error {
	if n.replica() != nil {
		return nil
	}
	return c.w.start(n)
}

// cutLinks cuts (or heals) n's link to member m, or to every member (-1).
func (c *campaign) cutLinks(n *node, m int, cut bool) {
	for i, p := range n.links {
		if m >= 0 && i != m {
			continue
		}
		if cut {
			p.CutOff()
		} else {
			p.Heal()
		}
	}
}

// hookFault makes the target's next hook misbehave and gives it one to
// run: the primary resigns (its demote runs), a standby is switched to
// (its promote runs).
func (c *campaign) hookFault(a *active, promoteMode, demoteMode string) error {
	if a.fault.Primary {
		if err := c.w.setHookMode(a.node, demoteMode); err != nil {
			return err
		}
		a.fault.Note = demoteMode + ", and the primary resigned"
		return c.operator("resign", "--wait", "0")
	}
	if err := c.w.setHookMode(a.node, promoteMode); err != nil {
		return err
	}
	a.fault.Note = promoteMode + ", and a switchover to it"
	return c.operator("switchover", "--to", a.node.id, "--wait", "0")
}

// flap turns the target's health check bad and good until stopped.
func (c *campaign) flap(a *active, r *rand.Rand) {
	defer close(a.done)
	bad := true
	for {
		_ = c.w.setUnhealthy(a.node, bad)
		bad = !bad
		select {
		case <-a.stop:
			return
		case <-time.After(time.Duration(300+r.IntN(600)) * time.Millisecond):
		}
	}
}

func (c *campaign) members() int { return len(c.w.etcd.Endpoints()) }

func (c *campaign) killMembers(a *active) error {
	names := make([]string, len(a.members))
	for i, m := range a.members {
		names[i] = memberName(m)
		if err := c.w.etcd.Kill(m); err != nil {
			return err
		}
	}
	a.fault.Target = strings.Join(names, ",")
	return nil
}

func (c *campaign) restartMembers(a *active) error {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	errs := make(chan error, len(a.members))
	for _, m := range a.members {
		go func() { errs <- c.w.etcd.Restart(ctx, m) }()
	}
	var first error
	for range a.members {
		// Not ready yet is no failure: with another member down there may be
		// no quorum until that one is back too; the member keeps running.
		if err := <-errs; err != nil && !errors.Is(err, ErrNotReady) && first == nil {
			first = err
		}
	}
	return first
}

// loseQuorum either kills two members or cuts every peer link, chosen
// at random: a crash and a partition lose quorum differently.
func (c *campaign) loseQuorum(a *active) error {
	n := c.members()
	first := c.rand.IntN(n)
	a.members = []int{first, (first + 1 + c.rand.IntN(n-1)) % n}
	if c.rand.IntN(2) == 0 {
		a.fault.Note = "two members killed"
		return c.killMembers(a)
	}
	a.fault.Note = "every member isolated"
	a.members = nil
	for m := range n {
		c.w.etcd.Isolate(m)
	}
	a.fault.Target = "all members"
	return nil
}

func (c *campaign) regainQuorum(a *active) error {
	if a.members == nil {
		for m := range c.members() {
			c.w.etcd.Rejoin(m)
		}
		return nil
	}
	return c.restartMembers(a)
}

// operator runs a leaderd control command against the members directly
// (an operator's shell is not behind the replicas' proxies).
func (c *campaign) operator(cmd string, args ...string) error {
	ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
	defer cancel()
	full := append([]string{cmd, "--endpoints", strings.Join(c.w.etcd.Endpoints(), ","), "--election", electionName}, args...)
	if cmd == "resign" || cmd == "switchover" {
		full = append(full, "--timeout", (4 * c.w.opts.TTL).String())
	}
	out, err := exec.CommandContext(ctx, c.w.set.Binary, full...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("leaderd %s: %v: %s", cmd, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// resume ends a pause, retrying while etcd cannot take it (an overlapping
// etcd fault may just have healed): a pause left behind would stop every
// later failover and be blamed on leaderd.
func (c *campaign) resume() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.operator("resume")
		if err == nil || time.Now().After(deadline) || c.ctx.Err() != nil {
			return err
		}
		c.sleep(500 * time.Millisecond)
	}
}

// randomStandby is a running replica that is not the primary, or nil.
func (c *campaign) randomStandby() *node {
	primary, _ := c.obs.primary()
	var standbys []*node
	for _, n := range c.w.nodes {
		if n.id != primary && n.replica() != nil && !n.frozen() {
			standbys = append(standbys, n)
		}
	}
	if len(standbys) == 0 {
		return nil
	}
	return standbys[c.rand.IntN(len(standbys))]
}
