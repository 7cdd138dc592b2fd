package etcdtest

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"

	"go.uber.org/zap/zapcore"
)

// slogCore is a zap core that passes etcd's error-level (and worse) entries
// to a slog.Logger and drops the rest, so etcd stays quiet in test output.
// While quiet is set (a member being stopped, whose servers fail under
// their accept loops as expected) they are logged at debug level.
type slogCore struct {
	logger *slog.Logger
	quiet  *atomic.Bool // nil: never quiet
	fields []zapcore.Field
}

func newSlogCore(logger *slog.Logger) zapcore.Core { return &slogCore{logger: logger} }

// NewSlogCore is the zap core etcdtest gives its embedded etcd, for other
// embedders (the fault campaign): etcd's errors to logger, at debug level
// while quiet (which may be nil) is set.
func NewSlogCore(logger *slog.Logger, quiet *atomic.Bool) zapcore.Core {
	return &slogCore{logger: logger, quiet: quiet}
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.ErrorLevel }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	all := make([]zapcore.Field, 0, len(c.fields)+len(fields))
	all = append(append(all, c.fields...), fields...)
	return &slogCore{logger: c.logger, quiet: c.quiet, fields: all}
}

func (c *slogCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *slogCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	level := slog.LevelError
	if c.quiet != nil && c.quiet.Load() {
		level = slog.LevelDebug
	}
	c.logger.LogAttrs(context.Background(), level, ent.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
