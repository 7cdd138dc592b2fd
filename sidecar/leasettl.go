package sidecar

import (
	"log/slog"
	"time"

	"github.com/leaderd/leaderd/election"
)

// ttlCheck reads the lease TTL back after the first grant (etcd's
// TimeToLive), because etcd raises a TTL below its minimum (derived from
// its election timeout) without a word. When the TTL differs it warns once
// and retimes the guard, so the safety arithmetic uses the real TTL. Only
// the state machine's goroutine uses it (through etcdElector.Grant).
type ttlCheck struct {
	cfg    Config
	logger *slog.Logger
	// inEffect tells the replica's state the TTL in effect, for /status.
	inEffect func(time.Duration)

	done      bool // a read-back succeeded and agreed: no more are made
	warned    bool
	disagreed bool // the disagreement was logged (once)
}

// options are the lease options of the next grant: base, with a read-back
// until one succeeded. adopt is called when the granted TTL is known to
// differ, with the options later grants must use.
func (c *ttlCheck) options(base election.LeaseOptions, adopt func(election.LeaseOptions)) election.LeaseOptions {
	if c == nil || c.done {
		return base
	}
	base.ReadBack = func(rb election.TTLReadBack) (time.Duration, time.Duration) {
		return c.found(base, rb, adopt)
	}
	return base
}

// found judges one read-back and returns the guard's renew interval and
// step-down lead for the lease it read.
func (c *ttlCheck) found(base election.LeaseOptions, rb election.TTLReadBack, adopt func(election.LeaseOptions)) (time.Duration, time.Duration) {
	switch {
	case rb.Err != nil:
		c.logger.Warn("reading the lease TTL back failed; reading it again after the next grant", "err", rb.Err)
	case rb.GrantResponse != rb.Granted:
		// Not adopted: a shorter TTL asked for later could leave a guard
		// the configuration was never validated for, and no safe time.
		// This lease runs on the shorter; the next grant reads back again.
		if !c.disagreed {
			c.disagreed = true
			c.logger.Warn("etcd's grant and TimeToLive disagree on the lease TTL; the guard uses the shorter",
				"grant_ttl", rb.GrantResponse.String(), "time_to_live_ttl", rb.Granted.String())
		}
	default:
		c.done = true
	}
	ttl := min(rb.Granted, rb.GrantResponse)
	if ttl == base.TTL {
		return base.RenewInterval, base.StepDownLead
	}
	b := c.cfg.Budget(ttl)
	if !c.warned {
		c.warned = true
		c.logger.Warn("etcd granted another lease TTL than asked; the lease guard follows the granted TTL",
			"ttl_asked", base.TTL.String(), "ttl_granted", ttl.String(),
			"renew_interval", b.RenewInterval.String(), "step_down_lead", b.StepDownLead.String(),
			"safe_deadline", b.SafeDeadline.String(), "crash_failover", b.CrashFailover.String())
	}
	if c.done {
		// Later grants ask for what etcd grants, on the same guard.
		base.TTL, base.RenewInterval, base.StepDownLead = ttl, b.RenewInterval, b.StepDownLead
		base.ReadBack = nil
		adopt(base)
		c.inEffect(ttl)
	}
	return b.RenewInterval, b.StepDownLead
}
