package chaos

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test here must leave nothing running: embedded etcd members,
// fault proxies and clients alike.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
