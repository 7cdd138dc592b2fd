package sidecar_test

import (
	"testing"
	"time"

	"github.com/leaderd/leaderd/sidecar"
)

// TestDerivedTimingDefaultsAreValid: the default demote timeout derived
// from a TTL, and the default TTL derived from a demote timeout, always
// pass the lease guard rule, and each is the most (the least) it allows.
func TestDerivedTimingDefaultsAreValid(t *testing.T) {
	for ttl := 2 * time.Second; ttl <= 300*time.Second; ttl += time.Second {
		c := valid()
		c.TTL, c.DemoteTimeout = ttl, sidecar.DemoteTimeoutFor(ttl)
		if err := c.Validate(); err != nil {
			t.Fatalf("ttl %s with its derived demote timeout %s: %v", ttl, c.DemoteTimeout, err)
		}
		if c.DemoteTimeout < 5*time.Second {
			c.DemoteTimeout += time.Millisecond
			if c.Validate() == nil {
				t.Fatalf("ttl %s: demote timeout %s is valid too: %s was not the longest", ttl, c.DemoteTimeout, c.DemoteTimeout-time.Millisecond)
			}
		}
	}
	for demote := time.Millisecond; demote <= 200*time.Second; demote += 37 * time.Millisecond {
		c := valid()
		c.TTL, c.DemoteTimeout = sidecar.TTLFor(demote), demote
		if err := c.Validate(); err != nil {
			t.Fatalf("demote timeout %s with its derived ttl %s: %v", demote, c.TTL, err)
		}
		if c.TTL > 15*time.Second {
			c.TTL -= time.Second
			if c.Validate() == nil {
				t.Fatalf("demote timeout %s: ttl %s is valid too: %s was not the shortest", demote, c.TTL, c.TTL+time.Second)
			}
		}
	}
}
