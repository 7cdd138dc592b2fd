package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"

	"github.com/leaderd/leaderd/sidecar"
)

// stopper is what runUntilSignalled needs of a *sidecar.Sidecar.
type stopper interface {
	Run(ctx context.Context) error
	Abort()
}

// runCommand is `leaderd run`.
func runCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	f := newRunFlags(env)
	opts, err := f.parse(args)
	if errors.Is(err, errHelp) {
		f.set.usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "leaderd run: %s\n", oneLine(err.Error()))
		return exitBadInput
	}
	surviveBrokenPipes()
	// Every log line goes through a sink that never blocks: nothing on the
	// step-down path may wait on stderr.
	sink := newLogSink(stderr, opts.LogFormat)
	defer sink.Close(logFlushTimeout)
	opts.Config.LogLinesDropped = sink.Dropped
	logger := newLogger(sink, opts.LogFormat, opts.LogLevel)
	if stderr == os.Stderr {
		// gRPC (errors) and net/http write to the process's stderr by
		// themselves: in the log's format, through the sink too.
		routeLibraryLogs(logger)
	}
	sc, err := sidecar.New(opts.Config, logger)
	if err != nil { // Validate already passed; New may check more.
		fmt.Fprintf(stderr, "leaderd run: %s\n", oneLine(err.Error()))
		return exitBadInput
	}
	logStarting(logger, opts)

	signals, stop := notifySignals()
	defer stop()
	if err := runUntilSignalled(sc, signals, logger); err != nil {
		logger.Error("stopped with an error", "err", err)
		return exitError
	}
	logger.Info("stopped")
	return exitOK
}

// runUntilSignalled runs sc until it returns. The first termination signal
// cancels its context (graceful stop); the second calls Abort to cut the etcd
// clean-up short. Later signals are only logged: the stop is already as fast
// as it can be without skipping a demote hook. SIGHUP is logged and ignored.
func runUntilSignalled(sc stopper, signals <-chan os.Signal, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	received := 0
	for {
		select {
		case err := <-done:
			return err
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				logger.Info(hangupIgnored, "signal", sig.String())
				continue
			}
			received++
			switch received {
			case 1:
				logger.Info("stopping gracefully; send the signal again to cut etcd clean-up short", "signal", sig.String())
				cancel()
			case 2:
				logger.Warn("second signal: cutting etcd clean-up short", "signal", sig.String())
				sc.Abort()
			default:
				logger.Warn("already stopping; a running demote hook is never interrupted", "signal", sig.String())
			}
		}
	}
}
