package etcdtest

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestSlogCoreForwardsErrorsOnly(t *testing.T) {
	var buf bytes.Buffer
	lg := zap.New(newSlogCore(slog.New(slog.NewTextHandler(&buf, nil)))).With(zap.String("member", "m1"))
	lg.Info("chatty")
	lg.Warn("still chatty")
	lg.Error("broken", zap.Error(errors.New("boom")), zap.Int("port", 2379))

	out := buf.String()
	if strings.Contains(out, "chatty") {
		t.Errorf("info/warn entries forwarded: %q", out)
	}
	for _, want := range []string{"level=ERROR", "msg=broken", "error=boom", "member=m1", "port=2379"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}
