package main

import (
	"os"
	"os/signal"
)

// notifySignals delivers SIGTERM and SIGINT on the returned channel until
// stop is called. Signal handling lives only in cmd/: the packages below
// take a context, so tests and the demo can embed them.
func notifySignals() (<-chan os.Signal, func()) {
	// Buffered for two: the graceful stop and the abort must not be lost
	// while the receiver is busy logging.
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, terminationSignals...)
	return ch, func() { signal.Stop(ch) }
}
