package election

import (
	"log/slog"
	"strconv"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// ReadOption configures how a Store reads and watches the election's keys.
type ReadOption func(*readConfig)

type readConfig struct {
	ignored *ignoredLog
}

// LogIgnored makes the Store's reads and watches log, at WARN, each value
// they ignore (not one of leaderd's records, or without an id): once per
// key and mod revision, not once per read, since the watches read again on
// every change. The memory of what was logged lives with the Store, shared
// by its reads and watches.
func LogIgnored(logger *slog.Logger) ReadOption {
	l := newIgnoredLog(logger)
	return func(c *readConfig) { c.ignored = l }
}

func readOptions(opts []ReadOption) readConfig {
	var c readConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Logged values are cut to quotedValueBytes and quoted, keys cut to
// quotedKeyBytes: a hostile value may be 1 MiB of anything.
const (
	quotedValueBytes = 64
	quotedKeyBytes   = 256
	// ignoredMemory bounds the keys remembered; past it the memory starts
	// afresh (a value may then be logged once more), so a writer of many
	// keys cannot grow it without bound.
	ignoredMemory = 1024
)

// ignoredLog logs ignored values once per key and mod revision. A nil
// *ignoredLog logs nothing.
type ignoredLog struct {
	logger *slog.Logger
	mu     sync.Mutex
	logged map[string]int64 // key -> the mod revision last logged
}

func newIgnoredLog(logger *slog.Logger) *ignoredLog {
	if logger == nil {
		return nil
	}
	return &ignoredLog{logger: logger, logged: map[string]int64{}}
}

// ignore logs that kv's value is ignored, and why, unless this key at this
// mod revision was logged already.
func (l *ignoredLog) ignore(kv *mvccpb.KeyValue, why string) {
	if l == nil || kv == nil {
		return
	}
	key := string(kv.Key)
	l.mu.Lock()
	if rev, ok := l.logged[key]; ok && rev == kv.ModRevision {
		l.mu.Unlock()
		return
	}
	if len(l.logged) >= ignoredMemory {
		clear(l.logged)
	}
	l.logged[key] = kv.ModRevision
	l.mu.Unlock()
	l.logger.Warn("ignoring a value in etcd", "key", cut(kv.Key, quotedKeyBytes), "why", why,
		"value", quoted(kv.Value, quotedValueBytes), "value_bytes", len(kv.Value), "mod_revision", kv.ModRevision)
}

// quoted is b cut to at most n bytes, Go-quoted, with "..." after the
// closing quote when it was cut.
func quoted(b []byte, n int) string {
	if len(b) <= n {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:n])) + "..."
}

// cut is b cut to at most n bytes, with "..." when it was cut. Keys are
// logged as they are (the log handler escapes them); only values, which
// are anything, are quoted too.
func cut(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
