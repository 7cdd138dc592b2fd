package replicas

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/timeline"
)

func TestTimelineAndTenures(t *testing.T) {
	s := &Set{Dir: t.TempDir()}
	lines := "" +
		"1000 demote-start a - startup\n" +
		"2000 demote-end a - startup\n" +
		"3000 promote-start a 7 elected\n" +
		"4000 promote-end a 7 elected\n" +
		"5000 demote-start a 7 shutdown\n" +
		"6000 demote-end a 7 shutdown\n" +
		"7000 promote-start b 9 elected\n" +
		"8000 promote-end b" // a line still being written
	if err := os.WriteFile(s.TimelinePath(), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Timeline()
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 7 {
		t.Fatalf("%d events, want 7 (the partial line skipped)", len(evs))
	}
	if e := evs[2]; e.Hook != "promote" || e.Phase != "start" || e.ID != "a" || e.Token != 7 || e.Reason != "elected" || !e.At.Equal(time.Unix(0, 3000)) {
		t.Fatalf("event 2 = %+v", e)
	}
	if evs[0].Token != 0 {
		t.Fatalf("an empty token reads as %d", evs[0].Token)
	}
	ten := timeline.Tenures(evs)
	if len(ten) != 2 {
		t.Fatalf("tenures %+v", ten)
	}
	if ten[0].ID != "a" || !ten[0].Start.Equal(time.Unix(0, 3000)) || !ten[0].End.Equal(time.Unix(0, 6000)) || ten[0].EndReason != "shutdown" {
		t.Fatalf("first tenure %+v", ten[0])
	}
	if ten[1].ID != "b" || !ten[1].End.IsZero() {
		t.Fatalf("open tenure %+v", ten[1])
	}
	if i := timeline.First(3, timeline.Event{ID: "b", Hook: "promote"})(evs); i != 6 {
		t.Fatalf("First found %d, want 6", i)
	}
}

func TestTimelineMissingFileIsEmpty(t *testing.T) {
	evs, err := (&Set{Dir: t.TempDir()}).Timeline()
	if err != nil || len(evs) != 0 {
		t.Fatalf("%v %v", evs, err)
	}
}

// The benchmark measures the footprint of BuildRelease's binary as that of
// `make build`'s: a change to one of the two must reach the other.
func TestBuildReleaseMatchesMakefile(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var ldflags, build string
	for _, line := range strings.Split(string(mk), "\n") {
		if v, ok := strings.CutPrefix(line, "LDFLAGS := "); ok {
			ldflags = v
		}
		if strings.Contains(line, "$(GO) build") && strings.Contains(line, "./cmd/leaderd") {
			build = line
		}
	}
	if build == "" || ldflags == "" {
		t.Fatalf("Makefile: no leaderd build line (%q) or LDFLAGS (%q)", build, ldflags)
	}
	for _, want := range []string{"CGO_ENABLED=0 ", "-tags " + strings.Join(ReleaseTags, ",") + " ", "-trimpath ", "-ldflags '$(LDFLAGS)'"} {
		if !strings.Contains(build, want) {
			t.Errorf("Makefile's build line %q lacks %q, which BuildRelease uses", build, want)
		}
	}
	if len(ReleaseFlags) != 3 || ReleaseFlags[0] != "-trimpath" || ReleaseFlags[1] != "-ldflags" {
		t.Fatalf("ReleaseFlags = %q", ReleaseFlags)
	}
	if !strings.HasPrefix(ldflags, ReleaseFlags[2]+" ") {
		t.Errorf("Makefile's LDFLAGS %q do not start with BuildRelease's %q", ldflags, ReleaseFlags[2])
	}
}
