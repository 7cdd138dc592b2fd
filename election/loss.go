package election

import (
	"context"

	"github.com/leaderd/leaderd/role"
)

// loss is a one-shot "this is over" signal with its reason: a context
// cancelled once, whose cause is the error that ended it. The first mark
// wins.
type loss struct {
	ctx  context.Context
	mark context.CancelCauseFunc // later calls do nothing
}

func newLoss() *loss {
	ctx, mark := context.WithCancelCause(context.Background())
	return &loss{ctx: ctx, mark: mark}
}

// Done is closed once the loss is marked.
func (l *loss) Done() <-chan struct{} { return l.ctx.Done() }

// Err is the reason, or nil while it is not marked.
func (l *loss) Err() error { return context.Cause(l.ctx) }

// lossError is why a lease or a tenure ended without its owner's consent.
// It names the role.Reason that a primary stepping down for it reports,
// so that the sidecar reads the reason off the cause instead of decoding
// it.
type lossError struct {
	text   string
	reason role.Reason
}

func (e *lossError) Error() string { return e.text }

// StepDownReason is the reason a primary steps down for this loss.
func (e *lossError) StepDownReason() role.Reason { return e.reason }
