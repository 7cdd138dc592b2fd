// Command etcdmember runs one member of a static etcd cluster, built from
// the etcd server module leaderd already depends on, so that the scale
// bench (go run ./bench -scale) measures etcd in processes of its own:
// their CPU in /proc and their /metrics apart from the sidecars'.
//
//	etcdmember -name m1 -dir DIR -client URL -peer URL -initial-cluster m1=URL,m2=URL,m3=URL
//
// It serves until SIGTERM or SIGINT, then closes the member. Not a
// deployment tool: no TLS, no auth, loopback only.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// readyTimeout bounds the wait for the cluster to form (all three members
// start within a second of each other).
const readyTimeout = 60 * time.Second

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("etcdmember", flag.ContinueOnError)
	name := fs.String("name", "", "member name")
	dir := fs.String("dir", "", "data directory")
	client := fs.String("client", "", "client URL (listen and advertise)")
	peer := fs.String("peer", "", "peer URL (listen and advertise)")
	initial := fs.String("initial-cluster", "", "name=peerURL,... of every member")
	token := fs.String("token", "leaderd-scale", "initial cluster token")
	pprof := fs.Bool("pprof", false, "serve /debug/pprof on the client URL")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cu, err1 := url.Parse(*client)
	pu, err2 := url.Parse(*peer)
	if *name == "" || *dir == "" || *initial == "" || err1 != nil || err2 != nil || cu.Host == "" || pu.Host == "" {
		fmt.Fprintln(os.Stderr, "etcdmember: -name, -dir, -client, -peer and -initial-cluster are required")
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = *initial
	cfg.InitialClusterToken = *token
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.EnablePprof = *pprof
	cfg.LogLevel = "warn"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdmember: start: %v\n", err)
		return 1
	}
	defer e.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcdmember: %v\n", err)
		return 1
	case <-time.After(readyTimeout):
		fmt.Fprintf(os.Stderr, "etcdmember: not ready after %s\n", readyTimeout)
		return 1
	case <-sig:
		return 0
	}
	select {
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcdmember: %v\n", err)
		return 1
	case <-sig:
		return 0
	}
}
