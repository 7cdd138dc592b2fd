package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// TestRunOptionTable holds every option of `leaderd run`'s table to what
// defining a flag once promises: it is listed in --help with its $LEADERD_
// twin (an envOnly option: its variable, in a note), a value given on the
// command line or in the environment takes effect, and the start-up log
// shows the value in effect under the flag's name in snake case (a secret
// only as <name>_set, its value nowhere in the line). A flag added to the
// table without a sample value below fails here.
func TestRunOptionTable(t *testing.T) {
	certs, err := etcdtest.NewCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("canary-file-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A valid value other than the default, with the flags it needs.
	type sample struct {
		value string
		with  []string
	}
	samples := map[string]sample{
		"endpoints":        {value: "http://10.0.0.1:2379,http://10.0.0.2:2379"},
		"election":         {value: "db"},
		"prefix":           {value: "/apps"},
		"id":               {value: "r9"},
		"ttl":              {value: "20s"},
		"on-promote":       {value: "promote.sh canary-promote"},
		"on-demote":        {value: "demote.sh canary-demote"},
		"on-leader-change": {value: "follow.sh canary-follow"},
		"promote-timeout":  {value: "30s"},
		"demote-timeout":   {value: "3s"},
		"health-cmd":       {value: "check --password=canary-health"},
		"health-url":       {value: "http://u:canary-url@127.0.0.1:8080/healthz"},
		"health-interval":  {value: "3s"},
		"health-timeout":   {value: "500ms"},
		"health-failures":  {value: "5"},
		"health-successes": {value: "2"},
		"listen":           {value: "off"},
		"no-failover":      {value: "true"},
		"api-token":        {value: "canary-token"},
		"advertise":        {value: "10.0.0.7:5432"},
		"priority":         {value: "150"},
		"failback":         {value: "after=30s"},
		"log-format":       {value: "json"},
		"log-level":        {value: "debug"},
		"cacert":           {value: certs.CA},
		"cert":             {value: certs.ClientCert, with: []string{"--key", certs.ClientKey}},
		"key":              {value: certs.ClientKey, with: []string{"--cert", certs.ClientCert}},
		"user":             {value: "root"},
		"password":         {value: "canary-password", with: []string{"--user", "root"}},
		"password-file":    {value: pwFile, with: []string{"--user", "root"}},
	}

	r := invoke(nil, "run", "--help")
	help := r.stdout
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z-]+)`).FindAllStringSubmatch(help, -1) {
		listed[m[1]] = true
	}
	base, _ := startLine(t, []string{"--election", "web"}, envMap{})

	table := runOptionTable(defaultRunOptions())
	inTable := map[string]bool{}
	for _, opt := range table {
		inTable[opt.name] = true
	}
	for _, opt := range table {
		if opt.follows != "" && (!inTable[opt.follows] || opt.derive == nil) {
			t.Errorf("--%s follows --%s: want an option of that name and a derive func", opt.name, opt.follows)
		}
		env := envName(opt.name)
		switch {
		case opt.envOnly && (listed[opt.name] || !strings.Contains(help, env)):
			t.Errorf("%s: --help must name the variable and list no --%s flag", env, opt.name)
		case !opt.envOnly && (!listed[opt.name] || !strings.Contains(help, "$"+env)):
			t.Errorf("--%s: --help must list the flag and $%s", opt.name, env)
		}

		s, ok := samples[opt.name]
		if !ok {
			t.Errorf("--%s: no sample value in this test; add one", opt.name)
			continue
		}
		key := strings.ReplaceAll(opt.name, "-", "_")
		if opt.secret {
			key += "_set"
		}
		for _, viaEnv := range []bool{false, true} {
			if !viaEnv && opt.envOnly {
				continue
			}
			var args []string
			if opt.name != "election" {
				args = []string{"--election", "web"}
			}
			args = append(args, s.with...)
			env := envMap{}
			if viaEnv {
				env[envName(opt.name)] = s.value
			} else {
				args = append(args, "--"+opt.name+"="+s.value) // "=": a switch takes its value so
			}
			got, line := startLine(t, args, env)
			where := fmt.Sprintf("--%s %s (environment %v)", opt.name, s.value, viaEnv)
			switch v, ok := got[key]; {
			case !ok:
				t.Errorf("%s: the start-up line lacks %s: %s", where, key, line)
			case fmt.Sprint(v) == fmt.Sprint(base[key]):
				t.Errorf("%s: %s = %v as by default: the value did not take effect or is not logged", where, key, v)
			}
			if opt.secret && strings.Contains(line, s.value) {
				t.Errorf("%s: the start-up line shows a secret: %s", where, line)
			}
		}
	}
	for name := range samples {
		if !inTable[name] {
			t.Errorf("sample for --%s, which is not in the table", name)
		}
	}
	for name := range listed {
		if !inTable[name] && name != "help" {
			t.Errorf("--help lists --%s, which is not in the table", name)
		}
	}
	if _, line := startLine(t, []string{"--election", "web", "--user", "root", "--password-file", pwFile}, envMap{}); strings.Contains(line, "canary-file-password") {
		t.Errorf("the start-up line shows the password read from the file: %s", line)
	}
}

// startLine parses a `leaderd run` command line and returns its start-up log
// line as JSON fields, and as written.
func startLine(t *testing.T, args []string, env envMap) (map[string]any, string) {
	t.Helper()
	opts, err := parseRun(args, env.lookup)
	if err != nil {
		t.Fatalf("%q with %v: %v", args, env, err)
	}
	var out strings.Builder
	logStarting(newLogger(&out, "json", slog.LevelInfo), opts)
	var fields map[string]any
	if err := json.Unmarshal([]byte(out.String()), &fields); err != nil {
		t.Fatalf("start-up line %q: %v", out.String(), err)
	}
	return fields, out.String()
}
