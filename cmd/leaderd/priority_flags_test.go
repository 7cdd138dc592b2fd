package main

import "testing"

// TestRunPriorityFailbackBadInput: a bad --priority or --failback, on the
// command line or in the environment, exits 2 with one line naming it.
func TestRunPriorityFailbackBadInput(t *testing.T) {
	base := []string{"--election", "web"}
	checkBadInput(t, "run", []badInput{
		{name: "priority not a number", args: append(base, "--priority", "high"), want: []string{"--priority", `"high"`}},
		{name: "priority out of range", args: append(base, "--priority", "2000000000"), want: []string{"--priority", "2000000000"}},
		{name: "priority in env", args: base, env: envMap{"LEADERD_PRIORITY": "1.5"}, want: []string{"LEADERD_PRIORITY", `"1.5"`}},
		{name: "failback unknown mode", args: append(base, "--failback", "on"), want: []string{"--failback", `"on"`}},
		{name: "failback zero", args: append(base, "--failback", "after=0s"), want: []string{"--failback", "after=0s"}},
		{name: "failback negative", args: append(base, "--failback", "after=-1m"), want: []string{"--failback", "after=-1m"}},
		{name: "failback in env", args: base, env: envMap{"LEADERD_FAILBACK": "after=soon"}, want: []string{"LEADERD_FAILBACK", "after=soon"}},
	})
}
