package sidecar

import (
	"context"
	"log/slog"
	"sync"
)

// actors is a run group in the oklog/run style: named actors run beside
// the state machine until it returns; then every actor is interrupted
// (its context ends) and waited for, and last the work spawned on the way
// (history writes, revoke retries), which ends by its own bounds.
type actors struct {
	logger  *slog.Logger
	list    []actor
	spawned sync.WaitGroup
}

// actor is one piece of background work: run returns soon after its
// context ends.
type actor struct {
	name string
	run  func(ctx context.Context)
}

// add registers an actor; it starts when run is called.
func (g *actors) add(name string, run func(ctx context.Context)) {
	g.list = append(g.list, actor{name: name, run: run})
}

// run starts every actor, runs main in the caller's goroutine, then stops
// the actors and waits for them and for the spawned work. It returns
// main's error.
func (g *actors) run(main func() error) error {
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, a := range g.list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.run(ctx)
			g.logger.Debug("stopped", "actor", a.name)
		}()
	}
	err := main()
	stop()
	wg.Wait()
	g.spawned.Wait()
	return err
}

// spawn runs fn beside the state machine; run waits for it before it
// returns. fn must end by itself (a bound, or a context it was given).
func (g *actors) spawn(name string, fn func()) {
	g.spawned.Add(1)
	go func() {
		defer g.spawned.Done()
		fn()
		g.logger.Debug("finished", "work", name)
	}()
}
