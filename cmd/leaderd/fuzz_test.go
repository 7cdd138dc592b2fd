package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/sidecar"
)

// FuzzRunFlags feeds `leaderd run` arbitrary command lines and LEADERD_*
// environments. args holds the arguments separated by NUL, env the
// variables as NAME=VALUE separated by NUL (neither can hold a NUL for
// real). Properties:
//   - parsing never panics and gives the same answer twice;
//   - an error names a flag or variable of leaderd's (or quotes the stray
//     argument or unknown flag the user typed); one that starts with a
//     variable's name blames a value that came from that variable, and a
//     flag it names whose value came from the environment is explained by
//     its variable;
//   - a success is a Config that Validate accepts, within the lease
//     guard's rules, with the documented default (or derived default) for
//     every flag that was not given.
func FuzzRunFlags(f *testing.F) {
	seeds := []struct{ args, env string }{
		{"--election\x00web", ""},
		{"--election=web\x00--id\x00r1\x00--ttl\x0010s", ""},
		{"--election\x00web\x00--demote-timeout\x0030s", ""},
		{"--election\x00web", "LEADERD_TTL=8s\x00LEADERD_ON_PROMOTE=/bin/true"},
		{"", "LEADERD_ELECTION=web\x00LEADERD_ENDPOINTS=http://a:2379, http://b:2379,"},
		{"--election\x00web\x00--health-cmd\x00true\x00--health-interval\x00500ms", ""},
		{"--election\x00web\x00--no-failover", "LEADERD_NO_FAILOVER=maybe"},
		{"--election\x00web\x00-no-failover=false\x00--listen\x00off", ""},
		{"--election\x00web\x00--log-format\x00JSON\x00--log-level\x00Warning", ""},
		{"", ""},
		{"--help", ""},
		{"-x", ""},
		{"---ttl", ""},
		{"-", ""},
		{"--election\x00web\x00--ttl", ""},
		{"--election\x00web\x00stray", ""},
		{"--election\x00a/b", ""},
		{"--election\x00web", "LEADERD_ELECTION=no spaces\x00LEADERD_TTL=abc"},
		{"--election\x00web\x00--ttl\x001s", "LEADERD_DEMOTE_TIMEOUT=10s"},
		{"--election\x00web", "LEADERD_TTL=15s\x00LEADERD_DEMOTE_TIMEOUT=10s"},
		{"--election\x00web\x00--ttl\x002500ms", ""},
		{"--election\x00web\x00--ttl\x00-9223372036854775808ns", ""},
		{"--election\x00web\x00--demote-timeout\x002562047h", ""},
		{"--election\x00web\x00--health-failures\x009999999999999999999", ""},
		{"--election\x00web\x00--id\x00a\nb", ""},
		{"--election\x00web\x00--prefix\x00/", "LEADERD_PREFIX=x"},
		{"--election\x00web\x00--endpoints\x00etcd:2379", ""},
		{"--election\x00web\x00--listen\x008008", ""},
		{"--election\x00web\x00--cert\x00missing.pem", "LEADERD_KEY=missing.key"},
		{"--election\x00web\x00--user\x00root", "LEADERD_PASSWORD=x\x00LEADERD_PASSWORD_FILE=missing"},
		{"--election\x00web", "LEADERD_PASSWORD=secret"},
		{"--election\x00web\x00--health-url\x00ftp://x/", "LEADERD_HEALTH_CMD=true"},
		{"--election\x00--ttl", "LEADERD_TTL=--promote-timeout"},
		// Files that exist (this one): a password file read, a CA bundle
		// without PEM, and the password file given twice.
		{"--election\x00web\x00--user\x00root\x00--password-file\x00fuzz_test.go", "LEADERD_PASSWORD=x"},
		{"--election\x00web\x00--cacert=fuzz_test.go", ""},
		{"--election\x00web", "LEADERD_USER=root\x00LEADERD_PASSWORD_FILE=fuzz_test.go\x00LEADERD_PASSWORD=x"},
	}
	for _, s := range seeds {
		f.Add(s.args, s.env)
	}
	f.Fuzz(func(t *testing.T, rawArgs, rawEnv string) {
		var args []string
		if rawArgs != "" {
			args = strings.Split(rawArgs, "\x00")
		}
		env := envMap{}
		for kv := range strings.SplitSeq(rawEnv, "\x00") {
			if name, value, ok := strings.Cut(kv, "="); ok {
				env[name] = value
			}
		}
		if touchesSpecialFile(args, env) {
			return // --cacert /dev/stdin would block, /dev/zero never end
		}

		fl := newRunFlags(env.lookup)
		opts, err := fl.parse(args)
		again, againErr := parseRun(args, env.lookup)
		if !reflect.DeepEqual(opts, again) || errText(err) != errText(againErr) {
			t.Fatalf("two parses differ: %+v, %v and %+v, %v", opts, err, again, againErr)
		}
		switch {
		case errors.Is(err, errHelp):
			return
		case err != nil:
			checkFlagError(t, fl, args, err)
		default:
			checkRunOptions(t, fl, opts)
		}
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// touchesSpecialFile reports whether any argument or value names a file
// that reading could block on or never finish: devices, FIFOs, /proc and
// /sys, or a large file.
func touchesSpecialFile(args []string, env envMap) bool {
	var paths []string
	for _, a := range args {
		paths = append(paths, a)
		if _, v, ok := strings.Cut(a, "="); ok {
			paths = append(paths, v)
		}
	}
	for _, v := range env {
		paths = append(paths, v)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return true
		}
		if resolved, err := filepath.EvalSymlinks(abs); err == nil {
			abs = resolved
		}
		for _, special := range []string{"/dev", "/proc", "/sys"} {
			if abs == special || strings.HasPrefix(abs, special+"/") {
				return true
			}
		}
		if fi, err := os.Stat(abs); err == nil && !fi.IsDir() && (!fi.Mode().IsRegular() || fi.Size() > 1<<20) {
			return true
		}
	}
	return false
}

var (
	quotedValue   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	flagSyntax    = regexp.MustCompile(`(?s)^(?:flag provided but not defined: -|bad flag syntax: |flag needs an argument: -)(.*)$`)
	strayArgument = regexp.MustCompile(`(?s)^unexpected argument ("(?:[^"\\]|\\.)*")`)
	leadingName   = regexp.MustCompile(`^(LEADERD_[A-Z_]+)[: ]`)
)

// checkFlagError asserts that err names what the user got wrong.
func checkFlagError(t *testing.T, fl *runFlags, args []string, err error) {
	t.Helper()
	msg := err.Error()
	// What leaderd wrote, without the values it quotes from the input.
	own := quotedValue.ReplaceAllString(msg, `""`)

	named := false
	for _, f := range fl.set.flags {
		named = named || mentionsFlag(own, f.name) || strings.Contains(own, f.env)
	}
	named = named || strings.Contains(own, passwordEnv)
	if !named {
		if m := flagSyntax.FindStringSubmatch(msg); m != nil {
			named = inArgs(args, m[1])
		} else if m := strayArgument.FindStringSubmatch(msg); m != nil {
			stray, uerr := strconv.Unquote(m[1])
			named = uerr == nil && slices.Contains(args, stray)
		}
	}
	if !named {
		t.Fatalf("error %q names no flag, variable or argument of the input %q", msg, args)
	}

	for _, f := range fl.set.flags {
		// "LEADERD_TTL: invalid duration": the value came from there.
		if m := leadingName.FindStringSubmatch(own); m != nil && m[1] == f.env && f.source != fromEnv {
			t.Fatalf("error %q blames %s, but --%s came from %v", msg, f.env, f.name, f.source)
		}
		// "--ttl: ..." for a value from LEADERD_TTL must say so.
		if f.source == fromEnv && mentionsFlag(own, f.name) && !strings.Contains(own, f.env) {
			t.Fatalf("error %q names --%s, whose value came from %s, without naming %s", msg, f.name, f.env, f.env)
		}
	}
}

// mentionsFlag reports whether s names --name (not a longer flag).
func mentionsFlag(s, name string) bool {
	for _, m := range flagMention.FindAllStringSubmatch(s, -1) {
		if m[1] == name {
			return true
		}
	}
	return false
}

func inArgs(args []string, s string) bool {
	for _, a := range args {
		// parse folds a flag package error onto one line.
		if a != "" && (strings.Contains(a, s) || strings.Contains(strings.ReplaceAll(a, "\n", " "), s)) {
			return true
		}
	}
	return false
}

// checkRunOptions asserts that parsed options are valid and that every
// flag left out has its documented default.
func checkRunOptions(t *testing.T, fl *runFlags, opts runOptions) {
	t.Helper()
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		t.Fatalf("parsed config fails Validate: %v\n%+v", err, cfg)
	}
	if cfg.TTL < 2*time.Second || cfg.TTL%time.Second != 0 || cfg.DemoteTimeout <= 0 || cfg.DemoteTimeout > sidecar.MaxDemoteTimeout(cfg.TTL) ||
		cfg.PromoteTimeout <= 0 || cfg.RenewInterval() <= 0 || cfg.Health.Interval <= 0 || cfg.Health.Timeout > cfg.Health.Interval {
		t.Fatalf("accepted timing outside the lease guard's rules: %+v", cfg)
	}
	if cfg.Election == "" || len(cfg.Endpoints) == 0 || cfg.ID == "" || cfg.Prefix == "" || cfg.Listen == "" {
		t.Fatalf("accepted a config missing a required value: %+v", cfg)
	}
	if opts.LogFormat != "text" && opts.LogFormat != "json" {
		t.Fatalf("log format %q", opts.LogFormat)
	}

	def := sidecar.DefaultConfig()
	switch ttl, demote := fl.options.lookup("ttl").isSet(), fl.options.lookup("demote-timeout").isSet(); {
	case !ttl && !demote && (cfg.TTL != def.TTL || cfg.DemoteTimeout != def.DemoteTimeout):
		t.Fatalf("neither --ttl nor --demote-timeout given: %s and %s, want %s and %s", cfg.TTL, cfg.DemoteTimeout, def.TTL, def.DemoteTimeout)
	case ttl && !demote && cfg.DemoteTimeout != sidecar.DemoteTimeoutFor(cfg.TTL):
		t.Fatalf("only --ttl %s given: demote timeout %s, want %s", cfg.TTL, cfg.DemoteTimeout, sidecar.DemoteTimeoutFor(cfg.TTL))
	case demote && !ttl && cfg.TTL != sidecar.TTLFor(cfg.DemoteTimeout):
		t.Fatalf("only --demote-timeout %s given: ttl %s, want %s", cfg.DemoteTimeout, cfg.TTL, sidecar.TTLFor(cfg.DemoteTimeout))
	}
	defaults := []struct {
		flag      string
		got, want any
	}{
		{"endpoints", cfg.Endpoints, def.Endpoints},
		{"prefix", cfg.Prefix, def.Prefix},
		{"id", cfg.ID, def.ID},
		{"promote-timeout", cfg.PromoteTimeout, def.PromoteTimeout},
		{"listen", cfg.Listen, def.Listen},
		{"no-failover", cfg.NoFailover, false},
		{"on-promote", cfg.OnPromote, ""},
		{"api-token", cfg.APIToken, ""},
		{"health-failures", cfg.Health.Failures, def.Health.Failures},
		{"log-format", opts.LogFormat, "text"},
		{"log-level", opts.LogLevel.String(), "INFO"},
	}
	for _, d := range defaults {
		if !fl.options.lookup(d.flag).isSet() && !reflect.DeepEqual(d.got, d.want) {
			t.Fatalf("--%s not given: %v, want the default %v", d.flag, d.got, d.want)
		}
	}
}
