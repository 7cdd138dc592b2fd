// Package etcdtest runs an embedded single-member etcd on free loopback ports
// and a TCP fault proxy that can cut a client off from it.
//
// It serves two users: tests (through the TB wrappers Start, NewClient and
// StartProxy) and the `leaderd demo` command, which embeds etcd outside of
// `go test`. For that reason nothing in this package imports "testing";
// the wrappers take the small TB interface, which *testing.T satisfies.
package etcdtest
