package main

import (
	"strings"
	"testing"
)

// badInput is one bad command line for a one-shot command: it must exit 2
// with one line on stderr, prefixed by the command, holding every want.
type badInput struct {
	name string
	args []string
	env  envMap
	want []string
}

func checkBadInput(t *testing.T, cmd string, tests []badInput) {
	t.Helper()
	prefix := "leaderd " + cmd + ": "
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(tt.env, append([]string{cmd}, tt.args...)...)
			if r.code != exitBadInput {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, exitBadInput, r.stderr)
			}
			line := oneLineErr(t, r)
			if !strings.HasPrefix(line, prefix) {
				t.Errorf("stderr = %q, want the prefix %q", line, prefix)
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr = %q, want it to contain %q", line, w)
				}
			}
		})
	}
}
