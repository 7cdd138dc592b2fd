package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/sidecar"
)

// Deadlines of the one-shot commands (status, history, resign, ...): an
// operator (or a script) waits on them, so they give up rather than retry.
const (
	statusDialTimeout = 3 * time.Second
	statusCallTimeout = 5 * time.Second
)

// openStore connects to etcd as cfg says and binds the election's keys.
// The dial gives up at statusDialTimeout; the caller closes the client
// (store.Client().Close()).
func openStore(cfg sidecar.Config) (*election.Store, error) {
	return cfg.OpenStore(statusDialTimeout)
}

// etcdError says "unreachable" when etcd did not answer in time, and
// otherwise passes on what etcd said (auth failed, permission denied).
func etcdError(endpoints string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded || status.Code(err) == codes.Unavailable {
		return fmt.Errorf("etcd unreachable at %s: %w", endpoints, err)
	}
	return fmt.Errorf("etcd at %s: %w", endpoints, err)
}
