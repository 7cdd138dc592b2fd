package hooks

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// exampleRunners are the example scripts as leaderd would run them.
func exampleRunners(t *testing.T) (promote, demote *Runner) {
	t.Helper()
	dir, err := filepath.Abs("../examples/hooks")
	if err != nil {
		t.Fatal(err)
	}
	promote = &Runner{Name: "promote", Command: filepath.Join(dir, "promote.sh"), Timeout: 10 * time.Second}
	demote = &Runner{Name: "demote", Command: filepath.Join(dir, "demote.sh"), Timeout: 5 * time.Second}
	return promote, demote
}

func TestExampleHooksTimeline(t *testing.T) {
	timeline := filepath.Join(t.TempDir(), "timeline")
	t.Setenv("HOOK_TIMELINE", timeline)
	t.Setenv("APP_URL", "") // log only
	promote, demote := exampleRunners(t)
	log, buf := jsonLogger()
	promote.Logger, demote.Logger = log, log

	startup := Env{Event: "demote", Role: "standby", PreviousRole: "standby", Reason: "startup", ID: "app-1", Election: "db"}
	elected := testEnv()
	lost := testEnv()
	lost.Event, lost.Role, lost.PreviousRole, lost.Reason = "demote", "standby", "primary", "lease-lost"
	for _, step := range []struct {
		r   *Runner
		env Env
	}{{demote, startup}, {promote, elected}, {demote, lost}} {
		if res := runBounded(t, t.Context(), step.r, step.env, 15*time.Second); !res.OK() {
			t.Fatalf("%s (%s): %v", step.r.Name, step.env.Reason, res.Err)
		}
	}

	b, err := os.ReadFile(timeline)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"demote-start app-1 - startup",
		"demote-end app-1 - startup",
		"promote-start app-1 42 elected",
		"promote-end app-1 42 elected",
		"demote-start app-1 42 lease-lost",
		"demote-end app-1 42 lease-lost",
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("timeline has %d lines, want %d:\n%s", len(lines), len(want), b)
	}
	var prev int64
	for i, line := range lines {
		stamp, rest, _ := strings.Cut(line, " ")
		nanos, err := strconv.ParseInt(stamp, 10, 64)
		if err != nil || nanos < prev {
			t.Errorf("line %d %q: stamp not increasing unix nanos", i, line)
		}
		prev = nanos
		if rest != want[i] {
			t.Errorf("line %d = %q, want %q", i, rest, want[i])
		}
	}

	// Each run logs its variables on stderr.
	logged := strings.Join(outputLines(t, buf), "\n")
	for _, s := range []string{
		"WARN stderr promote promote: event=promote role=primary previous_role=standby reason=elected id=app-1 election=db leader=app-1 fencing_token=42 lease_id=694d7f1a2b3c4d5e",
		"WARN stderr demote demote: event=demote role=standby previous_role=standby reason=startup",
	} {
		if !strings.Contains(logged, s) {
			t.Errorf("output lacks %q:\n%s", s, logged)
		}
	}
}

func TestExampleHooksCallApp(t *testing.T) {
	if _, err := exec.LookPath("wget"); err != nil {
		t.Skip("wget not installed")
	}
	var (
		mu   sync.Mutex
		seen []string
	)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.String())
		mu.Unlock()
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer app.Close()
	t.Setenv("APP_URL", app.URL)
	t.Setenv("HOOK_TIMELINE", "")
	t.Setenv("http_proxy", "")
	t.Setenv("no_proxy", "*")

	promote, demote := exampleRunners(t)
	elected := testEnv()
	lost := testEnv()
	lost.Event, lost.Reason = "demote", "lease-lost"
	for _, step := range []struct {
		r   *Runner
		env Env
	}{{promote, elected}, {demote, lost}} {
		if res := runBounded(t, t.Context(), step.r, step.env, 15*time.Second); !res.OK() {
			t.Fatalf("%s: %v", step.r.Name, res.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"POST /promote?token=42", "POST /demote?token=42"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("app saw %q, want %q", seen, want)
	}
}
