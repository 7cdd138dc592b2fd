package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// squeeze folds runs of spaces, so a test reads the table's figures
// without its column widths.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// TTL 4s and demote timeout 1s, as the compose stack, the bench and e2e
// run (docs/design.md 5.2 and 11).
func TestCheckPrintsTheBudget(t *testing.T) {
	r := invoke(envMap{}, "check", "--election", "web", "--id", "db-1", "--ttl", "4s", "--demote-timeout", "1s")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
	}
	out := squeeze(r.stdout)
	for _, want := range []string{
		"Configuration valid: election web, id db-1.",
		"ttl 4s --ttl",
		"renew interval 1s ttl/4",
		"margin 500ms max(500ms, ttl/10)",
		"step-down lead 1.5s demote timeout 1s + margin",
		"safe deadline 2.5s after each renewal's send",
		"Crash failover, worst case: 5.575s",
		"etcd election 1s assumed",
		"etcd revoke tick 500ms assumed",
		"Graceful hand-off, worst case: 1.1s",
		"demote hook 1s --demote-timeout",
		"processes running none",
		"frozen primary 1s primary after it thaws",
		"suspended host 3.5s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	r := invoke(envMap{}, "check", "--election", "web", "--ttl", "4s", "--demote-timeout", "1s", "--json")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var got map[string]float64
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("not one JSON object of numbers: %v\n%s", err, r.stdout)
	}
	for k, want := range map[string]float64{
		"ttl_seconds": 4, "renew_interval_seconds": 1, "safe_deadline_seconds": 2.5, "margin_seconds": 0.5,
		"crash_failover_seconds": 5.575, "graceful_hand_off_seconds": 1.1, "overlap_while_running_seconds": 0,
		"frozen_after_thaw_seconds": 1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
}

// The environment twins of run's flags work for check too, with the same
// results.
func TestCheckEnvTwin(t *testing.T) {
	flags := invoke(envMap{}, "check", "--election", "web", "--id", "db-1", "--ttl", "6s")
	env := invoke(envMap{"LEADERD_ELECTION": "web", "LEADERD_ID": "db-1", "LEADERD_TTL": "6s"}, "check")
	if flags.code != exitOK || env.code != exitOK {
		t.Fatalf("exit %d with flags, %d with the environment (%q)", flags.code, env.code, env.stderr)
	}
	if flags.stdout != env.stdout {
		t.Errorf("flags and environment differ:\n%s\n---\n%s", flags.stdout, env.stdout)
	}
	// --ttl 6s alone: the demote timeout follows it, as for run.
	if !strings.Contains(squeeze(env.stdout), "step-down lead 3s demote timeout 2.4s + margin") {
		t.Errorf("the demote timeout did not follow --ttl:\n%s", env.stdout)
	}
}

func TestCheckBadInput(t *testing.T) {
	checkBadInput(t, "check", []badInput{
		{"no election", nil, nil, []string{"--election", "required"}},
		{"ttl below the minimum", []string{"--election", "web", "--ttl", "1s"}, nil, []string{"--ttl"}},
		{"demote timeout too long for the ttl", []string{"--election", "web", "--ttl", "4s", "--demote-timeout", "3s"}, nil, []string{"--ttl", "--demote-timeout"}},
		{"bad duration from the environment", []string{"--election", "web"}, envMap{"LEADERD_DEMOTE_TIMEOUT": "soon"}, []string{"LEADERD_DEMOTE_TIMEOUT", "soon"}},
		{"unknown flag", []string{"--election", "web", "--frobnicate"}, nil, []string{"frobnicate"}},
		{"bad endpoint", []string{"--election", "web", "--endpoints", "etcd:2379"}, nil, []string{"--endpoints"}},
	})
}

// check takes every flag run takes: one table for both.
func TestCheckTakesRunsFlags(t *testing.T) {
	run, check := newRunFlags(envMap{}.lookup), newCheckFlags(envMap{}.lookup)
	for _, f := range run.set.flags {
		if check.set.fs.Lookup(f.name) == nil && !f.envOnly {
			t.Errorf("check lacks --%s", f.name)
		}
	}
	if len(check.set.flags) != len(run.set.flags) {
		t.Errorf("check has %d flags with a variable, run %d", len(check.set.flags), len(run.set.flags))
	}
}

// check neither connects to etcd nor runs a hook: an endpoint nobody serves
// and a promote hook that would leave a file.
func TestCheckConnectsToNothing(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "ran")
	r := invoke(envMap{}, "check", "--election", "web", "--endpoints", "http://127.0.0.1:1",
		"--on-promote", "touch "+mark, "--on-demote", "touch "+mark, "--health-cmd", "touch "+mark)
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(mark); !os.IsNotExist(err) {
		t.Errorf("a hook ran: %v", err)
	}
}

func TestCheckHelp(t *testing.T) {
	r := invoke(nil, "check", "--help")
	if r.code != exitOK {
		t.Fatalf("exit %d", r.code)
	}
	for _, want := range []string{"Usage: leaderd check", "--ttl", "$LEADERD_TTL", "--json", "timing budget"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// README.md's `leaderd check` example is this binary's output (up to the
// example's "...").
func TestCheckREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const cmd = "$ leaderd check --election orders-db --id db-1 --ttl 4s --demote-timeout 1s\n"
	_, block, ok := strings.Cut(string(readme), cmd)
	if !ok {
		t.Fatalf("README.md has no example %q", cmd)
	}
	block, _, ok = strings.Cut(block, "...\n```")
	if !ok {
		t.Fatal("README.md's check example does not end with ...")
	}
	r := invoke(envMap{}, strings.Fields(strings.TrimPrefix(cmd, "$ leaderd "))...)
	if r.code != exitOK || !strings.HasPrefix(r.stdout, block) {
		t.Errorf("README.md's example is not the output (exit %d):\n%s\n--- README:\n%s", r.code, r.stdout, block)
	}
}

// `leaderd run` logs the same budget in its start-up line (one line, group
// budget).
func TestRunLogsTheBudget(t *testing.T) {
	fields, line := startLine(t, []string{"--election", "web", "--ttl", "4s", "--demote-timeout", "1s"}, envMap{})
	b, ok := fields["budget"].(map[string]any)
	if !ok {
		t.Fatalf("start-up line has no budget group: %s", line)
	}
	for k, want := range map[string]string{"ttl": "4s", "safe_deadline": "2.5s", "crash_failover": "5.575s", "graceful_hand_off": "1.1s", "frozen_after_thaw": "1s"} {
		if b[k] != want {
			t.Errorf("budget.%s = %v, want %s", k, b[k], want)
		}
	}
}
