package etcdtest

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RootPassword is the password EnableAuth gives etcd's root user, so a
// test can still act as administrator after auth is on.
const RootPassword = "etcdtest-root"

// EnableAuth turns on etcd's user auth through client, which must be able to
// administer etcd (auth still off). It creates the root user (etcd refuses
// to enable auth without one) with RootPassword, and user with password and
// a role of the same name that may read and write the keys starting with
// prefix. Leases need no permission of their own: any authenticated user
// may grant one, and revoking one needs write access to its keys.
func EnableAuth(ctx context.Context, client *clientv3.Client, user, password, prefix string) error {
	if user == "" || user == "root" || prefix == "" {
		return fmt.Errorf("etcdtest: enable auth: want a user other than root and a prefix, got %q and %q", user, prefix)
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"add user root", func() error { _, err := client.UserAdd(ctx, "root", RootPassword); return err }},
		{"grant role root to root", func() error { _, err := client.UserGrantRole(ctx, "root", "root"); return err }},
		{"add role " + user, func() error { _, err := client.RoleAdd(ctx, user); return err }},
		{"grant readwrite on " + prefix, func() error {
			_, err := client.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"add user " + user, func() error { _, err := client.UserAdd(ctx, user, password); return err }},
		{"grant role " + user + " to " + user, func() error { _, err := client.UserGrantRole(ctx, user, user); return err }},
		{"auth enable", func() error { _, err := client.AuthEnable(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("etcdtest: enable auth: %s: %w", s.what, err)
		}
	}
	return nil
}
