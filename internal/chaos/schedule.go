package chaos

import (
	"fmt"
	"time"
)

// scheduleSwitchover stores `switchover --to S --at +N` for a random
// running standby S, N 2 to 4 s; a third of them are cancelled a quarter
// of the way to their time (the heal). Otherwise the fault holds until
// the request is due, so its recovery is timed from then.
func (c *campaign) scheduleSwitchover(a *active) error {
	in := time.Duration(2+c.rand.IntN(3)) * time.Second
	cancel := c.rand.IntN(3) == 0
	to := c.randomStandby()
	if to == nil {
		a.fault.Note = "no standby running"
		return nil
	}
	a.fault.Target = to.id
	if err := c.operator("switchover", "--to", to.id, "--at", "+"+in.String(), "--wait", "0"); err != nil {
		return err
	}
	if cancel {
		a.cancelled, a.hold = true, in/4
		a.fault.Note = fmt.Sprintf("due in %s, cancelled before", in)
		return nil
	}
	a.hold = in
	a.fault.Note = fmt.Sprintf("due in %s", in)
	return nil
}

// cancelSwitchover cancels the fault's request if it was to be cancelled.
// A cancel that finds nothing pending (a fault overlapping it ended the
// tenure, so the request went stale) fails and is noted, not judged.
func (c *campaign) cancelSwitchover(a *active) error {
	if !a.cancelled || a.fault.InjectErr != "" {
		return nil
	}
	return c.operator("switchover", "--cancel")
}
