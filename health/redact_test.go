package health

import (
	"strings"
	"testing"
)

func TestRedactedURL(t *testing.T) {
	got := redactedURL("http://user:hunter2@127.0.0.1:8080/health")
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "127.0.0.1:8080/health") {
		t.Errorf("redactedURL = %q", got)
	}
}
