package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/health"
	"github.com/leaderd/leaderd/sidecar"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 5 * time.Second

// runFlagNames is README.md's `leaderd run` flag table ("Flags").
var runFlagNames = []string{
	"endpoints", "election", "id", "prefix", "ttl", "on-promote", "on-demote",
	"promote-timeout", "demote-timeout", "listen", "log-format", "log-level",
	"cacert", "cert", "key", "user", "password-file",
	"on-leader-change", "no-failover", "api-token", "advertise", "health-cmd", "health-url", "health-interval", "health-timeout", "health-failures", "health-successes",
}

func TestRunConfigBadInput(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	base := []string{"--election", "web", "--id", "r1"}

	tests := []struct {
		name  string
		args  []string
		env   envMap
		exact string   // the whole line, when given
		want  []string // substrings of the line
	}{
		{name: "unknown flag", args: []string{"-x"}, exact: "leaderd run: flag provided but not defined: -x"},
		{name: "unknown double-dash flag", args: append(base, "--frobnicate"), want: []string{"flag provided but not defined", "-frobnicate"}},
		{name: "no password flag", args: append(base, "--password", "secret"), want: []string{"-password"}},
		{name: "flag without its value", args: append(base, "--ttl"), want: []string{"-ttl"}},
		{name: "malformed ttl", args: append(base, "--ttl", "abc"), exact: `leaderd run: --ttl: invalid duration "abc"`},
		{name: "malformed ttl in env", args: base, env: envMap{"LEADERD_TTL": "abc"}, exact: `leaderd run: LEADERD_TTL: invalid duration "abc"`},
		{name: "malformed promote-timeout", args: append(base, "--promote-timeout", "soon"), want: []string{"--promote-timeout", `"soon"`}},
		{name: "bare number demote-timeout in env", args: base, env: envMap{"LEADERD_DEMOTE_TIMEOUT": "5"}, want: []string{"LEADERD_DEMOTE_TIMEOUT", "invalid duration"}},
		{name: "health-failures not a number", args: append(base, "--health-failures", "abc"), want: []string{"--health-failures", `"abc"`}},
		{name: "health-cmd and health-url", args: append(base, "--health-cmd", "true", "--health-url", "http://127.0.0.1:8080/"), want: []string{"--health-cmd", "--health-url"}},
		{name: "health-timeout over interval", args: append(base, "--health-interval", "2s", "--health-timeout", "5s"), want: []string{"--health-timeout", "--health-interval"}},
		{name: "health-url not http", args: append(base, "--health-url", "ftp://x/"), want: []string{"--health-url"}},
		{name: "malformed health-interval in env", args: base, env: envMap{"LEADERD_HEALTH_INTERVAL": "often"}, want: []string{"LEADERD_HEALTH_INTERVAL", "invalid duration"}},
		{name: "missing election", args: nil, want: []string{"--election", "required"}},
		{name: "bad election name", args: []string{"--election", "a/b"}, want: []string{"--election", "a/b"}},
		{name: "bad election name in env", env: envMap{"LEADERD_ELECTION": "no spaces"}, want: []string{"--election", "LEADERD_ELECTION"}},
		{name: "ttl below 2s", args: append(base, "--ttl", "1s"), want: []string{"--ttl", "2s"}},
		{name: "ttl not whole seconds", args: append(base, "--ttl", "2500ms"), want: []string{"--ttl", "whole seconds"}},
		{name: "ttl below 2s in env", args: base, env: envMap{"LEADERD_TTL": "1s"}, want: []string{"--ttl", "LEADERD_TTL"}},
		{name: "ttl too short for demote-timeout", args: append(base, "--ttl", "10s", "--demote-timeout", "5s"), want: []string{"--ttl", "--demote-timeout"}},
		{name: "demote-timeout too long in env", args: base, env: envMap{"LEADERD_TTL": "15s", "LEADERD_DEMOTE_TIMEOUT": "10s"},
			want: []string{"--ttl", "--demote-timeout", "LEADERD_DEMOTE_TIMEOUT"}},
		{name: "endpoint without scheme", args: append(base, "--endpoints", "etcd-1:2379"), want: []string{"--endpoints", "etcd-1:2379"}},
		{name: "endpoint without port", args: append(base, "--endpoints", "http://etcd-1:2379,http://etcd-2"), want: []string{"--endpoints", "http://etcd-2"}},
		{name: "malformed endpoint in env", args: base, env: envMap{"LEADERD_ENDPOINTS": "ftp://etcd:21"}, want: []string{"--endpoints", "LEADERD_ENDPOINTS"}},
		{name: "missing cacert", args: append(base, "--cacert", missing), want: []string{"--cacert", missing}},
		{name: "garbage cacert", args: append(base, "--cacert", garbage), want: []string{"--cacert"}},
		{name: "missing cert", args: append(base, "--cert", missing, "--key", garbage), want: []string{"--cert"}},
		{name: "cert without key", args: append(base, "--cert", garbage), want: []string{"--cert", "--key"}},
		{name: "missing key in env", args: append(base, "--cert", garbage), env: envMap{"LEADERD_KEY": missing}, want: []string{"--key", "LEADERD_KEY"}},
		{name: "unreadable password-file", args: append(base, "--user", "root", "--password-file", missing), want: []string{"--password-file", missing}},
		{name: "unreadable password-file in env", args: append(base, "--user", "root"), env: envMap{"LEADERD_PASSWORD_FILE": missing}, want: []string{"LEADERD_PASSWORD_FILE"}},
		{name: "password twice in env", args: append(base, "--user", "root"), env: envMap{"LEADERD_PASSWORD_FILE": garbage, "LEADERD_PASSWORD": "x"},
			want: []string{"LEADERD_PASSWORD", "LEADERD_PASSWORD_FILE"}},
		{name: "password without user", args: base, env: envMap{"LEADERD_PASSWORD": "secret"}, want: []string{"--user"}},
		{name: "bad log-format", args: append(base, "--log-format", "xml"), want: []string{"--log-format", `"xml"`}},
		{name: "bad log-level", args: append(base, "--log-level", "loud"), want: []string{"--log-level", `"loud"`}},
		{name: "bad log-level in env", args: base, env: envMap{"LEADERD_LOG_LEVEL": "trace"}, want: []string{"LEADERD_LOG_LEVEL"}},
		{name: "bad listen", args: append(base, "--listen", "8008"), want: []string{"--listen"}},
		{name: "stray argument", args: append(base, "now"), want: []string{"unexpected argument", `"now"`}},
		{name: "stray argument before flags", args: []string{"web", "--election", "web"}, want: []string{"unexpected argument", `"web"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(tt.env, append([]string{"run"}, tt.args...)...)
			if r.code != exitBadInput {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, exitBadInput, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			line := oneLineErr(t, r)
			if !strings.HasPrefix(line, "leaderd run: ") {
				t.Errorf("stderr = %q, want the prefix %q", line, "leaderd run: ")
			}
			if tt.exact != "" && line != tt.exact {
				t.Errorf("stderr = %q, want %q", line, tt.exact)
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr = %q, want it to contain %q", line, w)
				}
			}
		})
	}
}

func TestRunConfigDefaults(t *testing.T) {
	opts, err := parseRun([]string{"--election", "web"}, envMap{}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := sidecar.DefaultConfig()
	want.Election = "web"
	want.Version = versionString()
	if !reflect.DeepEqual(opts.Config, want) {
		t.Errorf("Config = %+v\nwant     %+v", opts.Config, want)
	}
	if opts.LogFormat != "text" || opts.LogLevel != slog.LevelInfo {
		t.Errorf("log = %s %s, want text INFO", opts.LogFormat, opts.LogLevel)
	}
}

func TestRunConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	// Only one trailing newline is dropped: the password may end in "\n".
	if err := os.WriteFile(pwFile, []byte("s3cret\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envMap{
		"LEADERD_ENDPOINTS":        " http://10.0.0.1:2379, http://10.0.0.2:2379 ,",
		"LEADERD_ELECTION":         "db",
		"LEADERD_ID":               "db-1",
		"LEADERD_PREFIX":           "/apps/leaderd",
		"LEADERD_TTL":              "20s",
		"LEADERD_ON_PROMOTE":       "/hooks/promote --now",
		"LEADERD_ON_DEMOTE":        "/hooks/demote",
		"LEADERD_PROMOTE_TIMEOUT":  "2m",
		"LEADERD_DEMOTE_TIMEOUT":   "3s",
		"LEADERD_LISTEN":           "off",
		"LEADERD_LOG_FORMAT":       "json",
		"LEADERD_LOG_LEVEL":        "debug",
		"LEADERD_USER":             "leaderd",
		"LEADERD_PASSWORD_FILE":    pwFile,
		"LEADERD_HEALTH_URL":       "http://127.0.0.1:8080/healthz",
		"LEADERD_ADVERTISE":        "10.0.0.7:5432",
		"LEADERD_HEALTH_INTERVAL":  "5s",
		"LEADERD_HEALTH_TIMEOUT":   "2s",
		"LEADERD_HEALTH_FAILURES":  "4",
		"LEADERD_HEALTH_SUCCESSES": "2",
		"LEADERD_PRIORITY":         "-5",
		"LEADERD_FAILBACK":         "after=90s",
	}
	opts, err := parseRun(nil, env.lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := sidecar.Config{
		Endpoints:      []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379"},
		Election:       "db",
		ID:             "db-1",
		Prefix:         "/apps/leaderd",
		TTL:            20 * time.Second,
		OnPromote:      "/hooks/promote --now",
		OnDemote:       "/hooks/demote",
		PromoteTimeout: 2 * time.Minute,
		DemoteTimeout:  3 * time.Second,
		Listen:         "off",
		Advertise:      "10.0.0.7:5432",
		Priority:       -5,
		FailbackAfter:  90 * time.Second,
		Version:        versionString(),
		User:           "leaderd",
		Password:       "s3cret\n",
		Health: health.Config{
			URL: "http://127.0.0.1:8080/healthz", Interval: 5 * time.Second, Timeout: 2 * time.Second,
			Failures: 4, Successes: 2,
		},
	}
	if !reflect.DeepEqual(opts.Config, want) {
		t.Errorf("Config = %+v\nwant     %+v", opts.Config, want)
	}
	if opts.LogFormat != "json" || opts.LogLevel != slog.LevelDebug {
		t.Errorf("log = %s %s, want json DEBUG", opts.LogFormat, opts.LogLevel)
	}
}

func TestRunConfigFlagWinsOverEnv(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envMap{
		"LEADERD_ELECTION":   "from-env",
		"LEADERD_TTL":        "not a duration", // never parsed: the flag wins
		"LEADERD_ON_PROMOTE": "/from/env",
		"LEADERD_ENDPOINTS":  "http://env:2379",
		"LEADERD_LOG_LEVEL":  "error",
		"LEADERD_PASSWORD":   "from-env",
		"LEADERD_USER":       "root",
		"LEADERD_LISTEN":     "", // empty counts as unset: the default stays
	}
	opts, err := parseRun([]string{
		"--election=from-flag", "--ttl", "30s", "--on-promote", "", "--endpoints", "http://flag:2379",
		"--log-level", "warn", "--password-file", pwFile,
	}, env.lookup)
	if err != nil {
		t.Fatal(err)
	}
	c := opts.Config
	for _, d := range []struct {
		name      string
		got, want any
	}{
		{"Election", c.Election, "from-flag"},
		{"TTL", c.TTL, 30 * time.Second},
		{"OnPromote", c.OnPromote, ""}, // an explicit empty flag also wins
		{"Endpoints", strings.Join(c.Endpoints, ","), "http://flag:2379"},
		{"LogLevel", opts.LogLevel, slog.LevelWarn},
		{"Password", c.Password, "from-file"}, // --password-file on the command line wins
		{"User", c.User, "root"},              // not on the command line: the env applies
		{"Listen", c.Listen, "127.0.0.1:8008"},
	} {
		if d.got != d.want {
			t.Errorf("%s = %q, want %q", d.name, d.got, d.want)
		}
	}
}

func TestRunConfigPasswordFromEnv(t *testing.T) {
	opts, err := parseRun([]string{"--election", "web", "--user", "root"}, envMap{"LEADERD_PASSWORD": "pw"}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Config.Password != "pw" {
		t.Errorf("Password = %q, want %q", opts.Config.Password, "pw")
	}
}

func TestRunHelp(t *testing.T) {
	r := invoke(envMap{"LEADERD_TTL": "abc"}, "run", "--help") // help works whatever the env holds
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
	}
	for _, name := range runFlagNames {
		if !strings.Contains(r.stdout, "--"+name+" ") {
			t.Errorf("help lacks --%s", name)
		}
		if !strings.Contains(r.stdout, "$"+envName(name)) {
			t.Errorf("help lacks $%s", envName(name))
		}
	}
	for _, want := range []string{
		"http://127.0.0.1:2379", "/leaderd", "default max(15s,", "default 60s", "default min(5s,",
		"127.0.0.1:8008", "default text", "default info", "/bin/sh -c",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if !regexp.MustCompile(`LEADERD_PASSWORD([^_]|$)`).MatchString(r.stdout) {
		t.Errorf("help does not say the password comes from LEADERD_PASSWORD")
	}
	if regexp.MustCompile(`(?m)^\s*--password\s`).MatchString(r.stdout) {
		t.Errorf("help lists a --password flag")
	}

	// Aligned: every flag's description, and the environment variable
	// line below it, start in the same column.
	col := -1
	for _, line := range strings.Split(r.stdout, "\n") {
		var at int
		switch {
		case strings.HasPrefix(line, "  -"):
			at = strings.Index(line[2:], "  ") + 2
			for at < len(line) && line[at] == ' ' {
				at++
			}
		case strings.HasPrefix(strings.TrimLeft(line, " "), "$LEADERD_"):
			at = strings.Index(line, "$")
		default:
			continue
		}
		if col == -1 {
			col = at
		} else if at != col {
			t.Errorf("%q: text starts at column %d, want %d", line, at, col)
		}
	}
}

func TestRunDefaultHelpFitsTerminal(t *testing.T) {
	for _, cmd := range []string{"run", "status"} {
		r := invoke(nil, cmd, "--help")
		for _, line := range strings.Split(r.stdout, "\n") {
			// The --id default shows this host's name; the rest fits 80 columns.
			if len(line) > 80 && !strings.Contains(line, "LEADERD_ID") {
				t.Errorf("%s --help: line of %d characters: %q", cmd, len(line), line)
			}
		}
	}
}

// fakeSidecar blocks in Run until its context ends, then, when
// waitForAbort is set, until Abort is called.
type fakeSidecar struct {
	waitForAbort bool
	runErr       error
	aborts       atomic.Int32
	aborted      chan struct{}
	cancelled    chan struct{}
}

func newFakeSidecar() *fakeSidecar {
	return &fakeSidecar{aborted: make(chan struct{}), cancelled: make(chan struct{})}
}

func (f *fakeSidecar) Run(ctx context.Context) error {
	if f.runErr != nil {
		return f.runErr
	}
	<-ctx.Done()
	close(f.cancelled)
	if f.waitForAbort {
		select {
		case <-f.aborted:
		case <-time.After(waitTimeout):
			return errors.New("fake: no abort")
		}
	}
	return nil
}

func (f *fakeSidecar) Abort() {
	if f.aborts.Add(1) == 1 {
		close(f.aborted)
	}
}

// runFake runs runUntilSignalled in the background and returns its result
// channel.
func runFake(sc stopper, signals <-chan os.Signal, log *bytes.Buffer) <-chan error {
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(log, nil))
	go func() { done <- runUntilSignalled(sc, signals, logger) }()
	return done
}

func waitErr(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("runUntilSignalled did not return")
		return nil
	}
}

func TestSignalFirstStopsGracefully(t *testing.T) {
	sc := newFakeSidecar()
	signals := make(chan os.Signal, 2)
	var log bytes.Buffer
	done := runFake(sc, signals, &log)
	signals <- syscall.SIGTERM
	if err := waitErr(t, done); err != nil {
		t.Fatalf("runUntilSignalled = %v, want nil", err)
	}
	if n := sc.aborts.Load(); n != 0 {
		t.Errorf("Abort called %d times after one signal, want 0", n)
	}
	if !strings.Contains(log.String(), "stopping gracefully") {
		t.Errorf("log lacks the graceful stop: %s", log.String())
	}
}

func TestSignalSecondAborts(t *testing.T) {
	sc := newFakeSidecar()
	sc.waitForAbort = true
	signals := make(chan os.Signal, 3)
	var log bytes.Buffer
	done := runFake(sc, signals, &log)
	signals <- syscall.SIGINT
	select {
	case <-sc.cancelled:
	case <-time.After(waitTimeout):
		t.Fatal("the first signal did not cancel Run's context")
	}
	signals <- syscall.SIGTERM
	if err := waitErr(t, done); err != nil {
		t.Fatalf("runUntilSignalled = %v, want nil", err)
	}
	if n := sc.aborts.Load(); n != 1 {
		t.Errorf("Abort called %d times, want 1", n)
	}
}

func TestRunErrorIsReturned(t *testing.T) {
	sc := newFakeSidecar()
	sc.runErr = errors.New("boom")
	var log bytes.Buffer
	if err := waitErr(t, runFake(sc, make(chan os.Signal), &log)); err == nil || err.Error() != "boom" {
		t.Fatalf("runUntilSignalled = %v, want boom", err)
	}
}

func TestLogStartingHidesPassword(t *testing.T) {
	opts, err := parseRun([]string{"--election", "web", "--user", "root"}, envMap{"LEADERD_PASSWORD": "hunter2"}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		var out bytes.Buffer
		logStarting(newLogger(&out, format, slog.LevelInfo), opts)
		s := out.String()
		if strings.Contains(s, "hunter2") {
			t.Errorf("%s: starting line shows the password: %s", format, s)
		}
		for _, want := range []string{"starting", "web", "root", "password_set", "15s"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s: starting line lacks %q: %s", format, want, s)
			}
		}
		if strings.Count(s, "\n") != 1 {
			t.Errorf("%s: want one line, got %q", format, s)
		}
	}
}
