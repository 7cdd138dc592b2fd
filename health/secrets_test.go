package health

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestCommandCheckHidesSecrets: the check command gets none of leaderd's
// own LEADERD_* configuration (the API token, the password, the command
// lines), and its command line, which may hold a credential, is logged
// nowhere, at any level.
func TestCommandCheckHidesSecrets(t *testing.T) {
	t.Setenv("LEADERD_API_TOKEN", "tok-canary")
	t.Setenv("LEADERD_PASSWORD", "pw-canary")
	t.Setenv("LEADERD_HEALTH_CMD", "cmd-canary")
	const secret = "sk-canary-health"
	cfg := valid()
	cfg.Interval, cfg.Timeout = time.Second, time.Second
	cfg.Failures, cfg.Successes = 1, 1
	cfg.Command = `if env | grep -e -canary; then exit 1; fi; echo fine # ` + secret
	h := &capture{}
	c := NewChecker(cfg, slog.New(h))
	run(t, c)
	waitState(t, c, true) // exit 1 had a variable leaked

	records := h.all()
	if len(records) == 0 {
		t.Fatal("nothing logged")
	}
	for _, r := range records {
		if strings.Contains(r.msg, secret) {
			t.Errorf("%q logs the command line", r.msg)
		}
		for k, v := range r.attrs {
			if strings.Contains(v, secret) {
				t.Errorf("%q logs the command line in %s=%q", r.msg, k, v)
			}
		}
	}
}
