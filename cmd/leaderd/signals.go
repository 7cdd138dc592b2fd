package main

import (
	"os"
	"os/signal"
	"syscall"
)

// terminationSignals are the signals that stop `leaderd run`.
var terminationSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT}

// hangupIgnored is logged for each SIGHUP. Operators of Patroni or
// keepalived send SIGHUP expecting a reload; a failover would be the worst
// way to read it, and leaderd has nothing to reload.
const hangupIgnored = "SIGHUP ignored: leaderd does not reload configuration; restart it to apply changes"

// notifySignals delivers SIGTERM, SIGINT and SIGHUP on the returned channel
// until stop is called. Signal handling lives only in cmd/: the packages
// below take a context, so tests and the demo can embed them.
func notifySignals() (<-chan os.Signal, func()) {
	// Buffered: the graceful stop and the abort must not be lost while the
	// receiver is busy, even behind a SIGHUP or two.
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, append(terminationSignals, syscall.SIGHUP)...)
	return ch, func() { signal.Stop(ch) }
}

// surviveBrokenPipes makes a write to a closed stdout or stderr pipe fail
// with EPIPE (the log sink counts the line as dropped) instead of killing
// leaderd with SIGPIPE before a primary could demote. It subscribes to
// SIGPIPE rather than ignoring it: an ignored signal stays ignored across
// exec, and hooks must start with the default SIGPIPE (so `cmd | head` in a
// hook behaves as in a shell). Nobody reads the channel; the signal package
// never blocks on a full one.
func surviveBrokenPipes() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}
