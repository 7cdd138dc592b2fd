package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/leaderd/leaderd/internal/logsink"
)

// logFlushTimeout bounds how long `leaderd run` waits at exit for stderr to
// take the last log lines: the demote is over by then, and a stalled stderr
// must not keep the process from exiting.
const logFlushTimeout = time.Second

// parseLogFormat checks --log-format: text or json.
func parseLogFormat(f *boundFlag) (string, error) {
	switch v := strings.ToLower(strings.TrimSpace(f.value)); v {
	case "text", "json":
		return v, nil
	}
	return "", fmt.Errorf("%s: %q must be text or json", f.origin(), f.value)
}

// parseLogLevel checks --log-level: debug, info, warn or error.
func parseLogLevel(f *boundFlag) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(f.value)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%s: %q must be debug, info, warn or error", f.origin(), f.value)
}

// newLogger returns the slog logger every component receives: text or JSON
// on w (stderr), at level.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// newLogSink wraps stderr in a sink that never blocks its caller: a full
// stderr pipe must never delay a step-down. Lines that do not fit its buffer
// are dropped, and one "log lines dropped" warning in the same format says
// how many once stderr takes writes again.
func newLogSink(stderr io.Writer, format string) *logsink.Sink {
	return logsink.New(stderr, logsink.Options{Report: func(dropped, total uint64) []byte {
		var b bytes.Buffer
		newLogger(&b, format, slog.LevelWarn).Warn("log lines dropped", "count", dropped, "total", total)
		return b.Bytes()
	}})
}

// logStarting logs every flag's value in effect, once, as `leaderd run`
// starts: the option table's values (secrets only as set or not: the
// password, the API token, and the hook and health check command lines and
// URL, which may hold credentials), then the timing derived from them and
// the timing budget (group budget).
func logStarting(logger *slog.Logger, opts runOptions) {
	c := opts.Config
	attrs := append([]any{"version", versionString()}, logAttrs(runOptionTable(defaultRunOptions()), opts)...)
	attrs = append(attrs,
		"renew_interval", c.RenewInterval().String(),
		"step_down_lead", c.StepDownLead().String(),
		"pid", os.Getpid(),
	)
	// The same figures as `leaderd check` and GET /status's budget, for the
	// TTL asked; a TTL etcd raises is warned about after the first grant.
	attrs = append(attrs, slog.Group("budget", c.Budget(0).LogAttrs()...))
	logger.Info("starting", attrs...)
}
