package main

import "github.com/leaderd/leaderd/sidecar"

// statusOptions is what `leaderd status` parsed. Config carries the
// connection and election fields; the rest keep their defaults.
type statusOptions struct {
	Config sidecar.Config
	JSON   bool
	Watch  bool
}

type statusFlags struct {
	set   *flagSet
	conn  connFlags
	json  *boolFlag
	watch *boolFlag
}

func newStatusFlags(env lookupEnv) *statusFlags {
	s := newFlagSet("status", "--election NAME [--endpoints URLS] [--json] [--watch]",
		"Show an election's leader and fencing token, its candidates in campaign\n"+
			"order (the first one is the leader), and the members the replicas publish\n"+
			"(role, health, lease left) with the election's availability\n"+
			"(healthy / registered members), as read from etcd now. --watch redraws on\n"+
			"every change until interrupted (with --json: one JSON object per line).\n\n"+
			"Exit status: 0 success, 1 etcd unreachable or the read failed, 2 bad input.", env)
	f := &statusFlags{set: s}
	f.conn = bindElection(s, sidecar.DefaultConfig())
	f.conn.bindTLSAuth(s)
	f.json = s.boolean("json", "print one JSON object instead of the table")
	f.watch = s.boolean("watch", "redraw on every change until SIGINT/SIGTERM")
	return f
}

func (f *statusFlags) parse(args []string) (statusOptions, error) {
	if err := f.set.parse(args); err != nil {
		return statusOptions{}, err
	}
	cfg := sidecar.DefaultConfig()
	if cfg.ID == "" {
		cfg.ID = "leaderd-status" // status campaigns for nothing; only Validate needs an id
	}
	if err := f.conn.apply(&cfg); err != nil {
		return statusOptions{}, err
	}
	// Validate checks the endpoints, election name, prefix and TLS files
	// with the same messages as run; the other fields hold valid defaults.
	if err := cfg.Validate(); err != nil {
		return statusOptions{}, f.set.explain(err)
	}
	opts := statusOptions{Config: cfg, JSON: f.json.value}
	if f.watch != nil { // history shares these flags but has no --watch
		opts.Watch = f.watch.value
	}
	return opts, nil
}
