package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

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
