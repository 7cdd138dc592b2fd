package chaos

import (
	"fmt"
	"net/http"
	"testing"
)

func post(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The store is the campaign's ground truth for fencing: it must refuse a
// token below the highest it has seen, from a write or from a promote, log
// every decision, and track which apps are primary.
func TestStoreFencesStaleTokens(t *testing.T) {
	s, err := StartStore()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func(token, value int64) int {
		return post(t, fmt.Sprintf("%s/write?token=%d&value=%d&id=r1&via=app", s.URL(), token, value))
	}
	if code := write(5, 1); code != http.StatusOK {
		t.Fatalf("first write: %d", code)
	}
	if code := post(t, s.URL()+"/promote?token=9&id=r2"); code != http.StatusOK {
		t.Fatalf("promote 9: %d", code)
	}
	if code := write(5, 2); code != http.StatusConflict {
		t.Fatalf("write with token 5 after promote 9: %d, want 409", code)
	}
	if apps := s.primaryApps(); apps["r2"] != 9 || len(apps) != 1 {
		t.Fatalf("apps after r2's promote: %v", apps)
	}
	if code := post(t, s.URL()+"/promote?token=7&id=r3"); code != http.StatusConflict {
		t.Fatalf("promote 7 after 9: %d, want 409", code)
	}
	if code := write(9, 3); code != http.StatusOK {
		t.Fatalf("write with token 9: %d", code)
	}
	if code := write(0, 4); code != http.StatusBadRequest {
		t.Fatalf("write without a token: %d, want 400", code)
	}
	if code := post(t, s.URL()+"/demote?id=r2"); code != http.StatusOK {
		t.Fatalf("demote r2: %d", code)
	}
	if apps := s.primaryApps(); len(apps) != 0 {
		t.Fatalf("apps after r2's demote: %v", apps)
	}
	got := s.Writes()
	want := []struct {
		kind     string
		token    int64
		accepted bool
		highest  int64
	}{{"write", 5, true, 0}, {"promote", 9, true, 5}, {"write", 5, false, 9}, {"promote", 7, false, 9}, {"write", 9, true, 9}, {"demote", 0, true, 9}}
	if len(got) != len(want) {
		t.Fatalf("log: %+v", got)
	}
	for i, w := range want {
		if got[i].Kind != w.kind || got[i].Token != w.token || got[i].Accepted != w.accepted || got[i].Highest != w.highest {
			t.Fatalf("log[%d] = %+v, want %+v", i, got[i], w)
		}
	}
}
