package election

import "testing"

// The key layout is a contract with running replicas of other versions,
// with `etcdctl elect` observers and with operators' scripts: spelled out
// here literally, so that a change to it fails a test.
func TestKeyLayout(t *testing.T) {
	s := NewStore(nil, "/leaderd", "web")
	for _, tc := range []struct{ name, got, want string }{
		{"root", s.Root(), "/leaderd/web/"},
		{"candidates", s.CandidatesPrefix(), "/leaderd/web/candidates/"},
		{"candidate", s.CandidateKey(0x694d7a1b2c3d4e5f), "/leaderd/web/candidates/694d7a1b2c3d4e5f"},
		{"control", s.ControlPrefix(), "/leaderd/web/control/"},
		{"paused", s.ControlPrefix() + controlPaused, "/leaderd/web/control/paused"},
		{"resign", s.ControlPrefix() + controlResign, "/leaderd/web/control/resign"},
		{"switchover", s.ControlPrefix() + controlSwitchover, "/leaderd/web/control/switchover"},
		{"history", s.HistoryPrefix(), "/leaderd/web/history/"},
		{"tenure", s.historyKey(42), "/leaderd/web/history/00000000000000000042"},
		{"members", s.MembersPrefix(), "/leaderd/web/members/"},
		{"member", s.MemberKey("r1"), "/leaderd/web/members/r1"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s key %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if s.Election() != "web" {
		t.Errorf("Election() = %q, want web", s.Election())
	}
}
