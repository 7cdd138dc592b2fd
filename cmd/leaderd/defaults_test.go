package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// durations renders each duration as a flag value.
func durations(ds ...time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// wholeSeconds is every TTL from..to seconds.
func wholeSeconds(from, to int) []string {
	var out []string
	for s := from; s <= to; s++ {
		out = append(out, fmt.Sprintf("%ds", s))
	}
	return out
}

// TestRunFlagAloneNeverRefusedForADefault sets each `leaderd run` flag on
// its own, on the command line and in the environment, at values valid for
// that flag: none may be refused because a related flag kept its default
// (as --health-interval 300ms was, by the 1s default --health-timeout, and
// --ttl 8s by the 5s default --demote-timeout).
func TestRunFlagAloneNeverRefusedForADefault(t *testing.T) {
	short := durations(time.Millisecond, 10*time.Millisecond, 100*time.Millisecond, 300*time.Millisecond,
		999*time.Millisecond, time.Second, 1500*time.Millisecond, 2*time.Second, 3*time.Second,
		5*time.Second, 10*time.Second, time.Minute, time.Hour)
	values := map[string][]string{
		"ttl":              append(wholeSeconds(2, 120), "3600s", "24h"),
		"demote-timeout":   append(short, "4s", "6s", "6001ms", "7s", "8s", "9s", "11s", "13s", "20s", "30s", "100s", "24h"),
		"health-interval":  short,
		"health-timeout":   short,
		"promote-timeout":  short,
		"health-failures":  {"1", "2", "3", "10", "1000"},
		"health-successes": {"1", "2", "3", "10", "1000"},
		"listen":           {"off", "0.0.0.0:8008", "127.0.0.1:0", ":8008", "[::1]:8008"},
		"endpoints":        {"http://10.0.0.1:2379", "https://etcd:2379,https://etcd2:2379"},
		"id":               {"r1", "pod-0.orders-db"},
		"prefix":           {"/x", "/apps/leaderd"},
		"health-cmd":       {"true"},
		"health-url":       {"http://127.0.0.1:8080/healthz"},
		"on-promote":       {"/hooks/promote"},
		"on-demote":        {"/hooks/demote"},
		"on-leader-change": {"/hooks/follow"},
		"no-failover":      {"true", "false"},
		"api-token":        {"t0ken"},
		"advertise":        {"10.0.0.7:5432"},
		"log-format":       {"text", "json"},
		"log-level":        {"debug", "info", "warn", "error"},
		"user":             {"root"},
	}
	for name, vals := range values {
		for _, v := range vals {
			for _, viaEnv := range []bool{false, true} {
				args, env := []string{"--election", "web"}, envMap{}
				if viaEnv {
					env[envName(name)] = v
				} else {
					args = append(args, "--"+name+"="+v) // "=": --no-failover is a switch
				}
				if _, err := parseRun(args, env.lookup); err != nil {
					t.Errorf("--%s %s alone (environment %v): %v", name, v, viaEnv, err)
				}
			}
		}
	}
}

// TestRunDerivedDefaults checks each derived default against its rule as
// usage and the README state it, computed here independently.
func TestRunDerivedDefaults(t *testing.T) {
	t.Run("demote-timeout follows --ttl", func(t *testing.T) {
		for _, v := range append(wholeSeconds(2, 60), "3600s") {
			ttl, _ := time.ParseDuration(v)
			opts, err := parseRun([]string{"--election", "web", "--ttl", v}, envMap{}.lookup)
			if err != nil {
				t.Fatalf("--ttl %s: %v", v, err)
			}
			want := min(5*time.Second, ttl/2-max(500*time.Millisecond, ttl/10)) // min(5s, --ttl/2 - max(500ms, --ttl/10))
			if got := opts.Config.DemoteTimeout; got != want {
				t.Errorf("--ttl %s: demote timeout %s, want %s", v, got, want)
			}
		}
	})
	t.Run("ttl follows --demote-timeout", func(t *testing.T) {
		for _, v := range []string{"1ms", "1s", "5s", "6s", "6001ms", "7s", "8s", "10s", "10400ms", "60s", "1h"} {
			d, _ := time.ParseDuration(v)
			opts, err := parseRun([]string{"--election", "web", "--demote-timeout", v}, envMap{}.lookup)
			if err != nil {
				t.Fatalf("--demote-timeout %s: %v", v, err)
			}
			tenths := (25*d + time.Second*10 - 1) / (time.Second * 10) // ceil(2.5 x d) in seconds
			want := max(15*time.Second, tenths*time.Second)
			if got := opts.Config.TTL; got != want {
				t.Errorf("--demote-timeout %s: ttl %s, want %s", v, got, want)
			}
			// The shortest such TTL: one second less is refused (unless 15s).
			if want > 15*time.Second {
				shorter := (want - time.Second).String()
				if _, err := parseRun([]string{"--election", "web", "--demote-timeout", v, "--ttl", shorter}, envMap{}.lookup); err == nil {
					t.Errorf("--demote-timeout %s --ttl %s accepted: %s is not the shortest TTL", v, shorter, want)
				}
			}
		}
	})
	t.Run("health-timeout follows --health-interval", func(t *testing.T) {
		for _, v := range []string{"1ms", "300ms", "999ms", "1s", "2s", "10s"} {
			interval, _ := time.ParseDuration(v)
			opts, err := parseRun([]string{"--election", "web", "--health-interval", v}, envMap{}.lookup)
			if err != nil {
				t.Fatalf("--health-interval %s: %v", v, err)
			}
			if got, want := opts.Config.Health.Timeout, min(time.Second, interval); got != want {
				t.Errorf("--health-interval %s: timeout %s, want %s", v, got, want)
			}
		}
	})
	t.Run("health-interval follows --health-timeout", func(t *testing.T) {
		for _, v := range []string{"1ms", "1s", "2s", "2001ms", "5s", "1m"} {
			timeout, _ := time.ParseDuration(v)
			opts, err := parseRun([]string{"--election", "web", "--health-timeout", v}, envMap{}.lookup)
			if err != nil {
				t.Fatalf("--health-timeout %s: %v", v, err)
			}
			if got, want := opts.Config.Health.Interval, max(2*time.Second, timeout); got != want {
				t.Errorf("--health-timeout %s: interval %s, want %s", v, got, want)
			}
		}
	})
}

// TestRunConflictingPairNamesBoth: both flags of a pair set, and in
// conflict, is bad input naming both, whether they came from the command
// line or the environment.
func TestRunConflictingPairNamesBoth(t *testing.T) {
	base := []string{"--election", "web"}
	checkBadInput(t, "run", []badInput{
		{name: "ttl and demote-timeout", args: append(base, "--ttl", "8s", "--demote-timeout", "5s"), want: []string{"--ttl 8s", "--demote-timeout 5s"}},
		{name: "ttl and demote-timeout in env", args: base, env: envMap{"LEADERD_TTL": "10s", "LEADERD_DEMOTE_TIMEOUT": "4500ms"},
			want: []string{"--ttl", "--demote-timeout", "LEADERD_TTL", "LEADERD_DEMOTE_TIMEOUT"}},
		{name: "health-timeout and health-interval", args: append(base, "--health-interval", "300ms", "--health-timeout", "1s"),
			want: []string{"--health-timeout 1s", "--health-interval 300ms"}},
		{name: "health pair in env", args: base, env: envMap{"LEADERD_HEALTH_INTERVAL": "2s", "LEADERD_HEALTH_TIMEOUT": "3s"},
			want: []string{"--health-timeout", "--health-interval", "LEADERD_HEALTH_TIMEOUT", "LEADERD_HEALTH_INTERVAL"}},
	})
}

// TestRunHelpShowsDerivedDefaults: usage states each derived default as
// its rule, not as a fixed value that holds only with the other default.
func TestRunHelpShowsDerivedDefaults(t *testing.T) {
	r := invoke(nil, "run", "--help")
	for _, rule := range []string{
		"default max(15s, ceil(2.5 x --demote-timeout))",
		"default min(5s, --ttl/2 - max(500ms, --ttl/10))",
		"default max(2s, --health-timeout)",
		"default min(1s, --health-interval)",
	} {
		if !strings.Contains(r.stdout, rule) {
			t.Errorf("run --help lacks %q", rule)
		}
	}
}
