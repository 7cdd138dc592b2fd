package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// envMap is a fake environment, so tests neither read nor change the
// process's own LEADERD_* variables.
type envMap map[string]string

func (e envMap) lookup(key string) (string, bool) {
	v, ok := e[key]
	return v, ok
}

// result is what one in-process invocation of leaderd produced.
type result struct {
	code           int
	stdout, stderr string
}

func invoke(env envMap, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := run(args, env.lookup, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// oneLineErr fails unless stderr is exactly one newline-terminated line.
func oneLineErr(t *testing.T, r result) string {
	t.Helper()
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("stderr = %q, want exactly one line", r.stderr)
	}
	return strings.TrimSuffix(r.stderr, "\n")
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"-help"}, {"help", "help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := invoke(nil, args...)
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
			}
			for _, want := range []string{"Usage:", "run", "status", "demo", "version", "help", "LEADERD_"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("usage lacks %q:\n%s", want, r.stdout)
				}
			}
		})
	}
}

func TestNoArguments(t *testing.T) {
	r := invoke(nil)
	if r.code != exitBadInput {
		t.Errorf("exit %d, want %d", r.code, exitBadInput)
	}
	if r.stdout != "" || !strings.Contains(r.stderr, "Usage:") || !strings.Contains(r.stderr, "status") {
		t.Errorf("stdout %q, stderr %q; want usage on stderr only", r.stdout, r.stderr)
	}
}

func TestUnknownCommand(t *testing.T) {
	for _, name := range []string{"x", "serve", "--json", ""} {
		r := invoke(nil, name)
		if r.code != exitBadInput {
			t.Errorf("%q: exit %d, want %d", name, r.code, exitBadInput)
		}
		want := `leaderd: unknown command "` + name + `" (see leaderd --help)`
		if got := oneLineErr(t, r); got != want {
			t.Errorf("stderr = %q, want %q", got, want)
		}
	}
}

func TestHelpForCommand(t *testing.T) {
	for _, cmd := range []string{"run", "status", "version"} {
		viaHelp := invoke(nil, "help", cmd)
		viaFlag := invoke(nil, cmd, "--help")
		if viaHelp.code != exitOK || viaFlag.code != exitOK {
			t.Fatalf("%s: exit %d and %d, want 0", cmd, viaHelp.code, viaFlag.code)
		}
		if viaHelp.stdout != viaFlag.stdout || !strings.Contains(viaHelp.stdout, "Usage: leaderd "+cmd) {
			t.Errorf("leaderd help %s printed %q; leaderd %s --help printed %q", cmd, viaHelp.stdout, cmd, viaFlag.stdout)
		}
	}
}

func TestVersion(t *testing.T) {
	pattern := regexp.MustCompile(`^leaderd \S+ \(go[0-9][^ )]*\)\n$`)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := invoke(nil, args...)
		if r.code != exitOK || r.stderr != "" || !pattern.MatchString(r.stdout) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0 and %s", args, r.code, r.stdout, r.stderr, pattern)
		}
	}

	// -ldflags "-X main.version=..." wins over the build info.
	saved := version
	t.Cleanup(func() { version = saved })
	version = "v1.2.3"
	if r := invoke(nil, "version"); !strings.HasPrefix(r.stdout, "leaderd v1.2.3 (go") {
		t.Errorf("with version set: stdout %q, want leaderd v1.2.3 (go...)", r.stdout)
	}

	r := invoke(nil, "version", "extra")
	if r.code != exitBadInput {
		t.Errorf("version extra: exit %d, want %d", r.code, exitBadInput)
	}
	oneLineErr(t, r)
}
