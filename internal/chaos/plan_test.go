package chaos

import (
	"math/rand/v2"
	"testing"
	"time"
)

// A failing seed must replay: each step's plan and each fault's draws
// depend only on the seed and the step, not on what earlier steps did.
func TestSameSeedDrawsTheSamePlan(t *testing.T) {
	a := &campaign{o: Options{Seed: 42, Overlap: 0.3}}
	b := &campaign{o: Options{Seed: 42, Overlap: 0.3}}
	other := &campaign{o: Options{Seed: 43, Overlap: 0.3}}
	differs := false
	for step := range 200 {
		// b's fault sources are used out of order and more often, as a
		// world that went differently would use them.
		for range step % 7 {
			b.faultRand(step+1, 0).IntN(10)
		}
		pa, pb := a.plan(step), b.plan(step)
		if pa.first != pb.first || pa.second != pb.second || pa.delay != pb.delay || pa.settle != pb.settle {
			t.Fatalf("step %d: plans differ for the same seed: %+v vs %+v", step, pa, pb)
		}
		if a.faultRand(step, 1).Uint64() != b.faultRand(step, 1).Uint64() {
			t.Fatalf("step %d: fault draws differ for the same seed", step)
		}
		if po := other.plan(step); po.first != pa.first || po.delay != pa.delay {
			differs = true
		}
		if pa.settle < 200*time.Millisecond || pa.settle >= time.Second {
			t.Fatalf("step %d: settle %s out of range", step, pa.settle)
		}
	}
	if !differs {
		t.Fatal("seeds 42 and 43 drew the same 200 plans")
	}
}

// Every kind can be drawn, and draw respects its filter.
func TestDrawCoversEveryKindAndHonoursTheFilter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for range 20000 {
		seen[draw(r, func(*kind) bool { return true }).name] = true
		if k := draw(r, func(k *kind) bool { return k.scope != onEtcd }); k.scope == onEtcd {
			t.Fatalf("filter ignored: drew %s", k.name)
		}
	}
	for _, k := range kinds {
		if !seen[k.name] {
			t.Errorf("kind %s never drawn", k.name)
		}
	}
}
