package election

import "sync"

// loss is a one-shot "this is over" signal with its reason: a channel
// closed once, and the error that closed it.
type loss struct {
	once sync.Once
	ch   chan struct{}
	err  error // written before ch is closed
}

func newLoss() *loss { return &loss{ch: make(chan struct{})} }

// mark closes the channel with err; later calls do nothing.
func (l *loss) mark(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.ch)
	})
}

// Err is the reason, or nil while the channel is open.
func (l *loss) Err() error {
	select {
	case <-l.ch:
		return l.err
	default:
		return nil
	}
}
