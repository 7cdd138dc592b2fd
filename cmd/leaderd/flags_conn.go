package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/leaderd/leaderd/sidecar"
)

// passwordEnv holds the etcd password. There is no --password flag, so the
// password never shows in ps output or shell history.
const passwordEnv = envPrefix + "PASSWORD"

// electionOptions say where etcd is and which election to look at. Every
// command lists them first.
func electionOptions() []option {
	return []option{
		{name: "endpoints", arg: "URLS", usage: "etcd endpoints, comma-separated",
			field: func(o *runOptions) any { return &o.Config.Endpoints }},
		{name: "election", arg: "NAME", usage: "election name, [A-Za-z0-9._-]{1,128}; required",
			field: func(o *runOptions) any { return &o.Config.Election },
			set: func(o *runOptions, f *boundFlag) error {
				o.Config.Election = strings.TrimSpace(f.value)
				return nil
			}},
		{name: "prefix", arg: "PATH", usage: "etcd key prefix",
			field: func(o *runOptions) any { return &o.Config.Prefix }},
	}
}

// tlsAuthOptions are etcd's TLS and authentication. Every command lists
// them after its own flags.
func tlsAuthOptions() []option {
	return []option{
		{name: "cacert", arg: "FILE", usage: "CA bundle (PEM) to verify etcd's certificate",
			field: func(o *runOptions) any { return &o.Config.CACert }},
		{name: "cert", arg: "FILE", usage: "client certificate (PEM) for etcd; needs --key",
			field: func(o *runOptions) any { return &o.Config.Cert }},
		{name: "key", arg: "FILE", usage: "client key (PEM) for --cert",
			field: func(o *runOptions) any { return &o.Config.Key }},
		{name: "user", arg: "NAME", usage: "etcd user name",
			field: func(o *runOptions) any { return &o.Config.User }},
		// Before --password-file, which checks it and wins over it.
		{name: "password", envOnly: true, secret: true,
			field: func(o *runOptions) any { return &o.Config.Password },
			note: "The etcd password comes only from the environment variable " + passwordEnv + "\n" +
				"or from --password-file (one trailing newline is dropped; the file wins when\n" +
				"given on the command line). There is no --password flag, so the password\n" +
				"never shows in ps output or shell history."},
		{name: "password-file", arg: "FILE", usage: "file holding the etcd password",
			field: func(o *runOptions) any { return &o.PasswordFile },
			set:   readPasswordFile},
	}
}

// readPasswordFile reads --password-file into the password. A
// --password-file on the command line wins over LEADERD_PASSWORD, like every
// flag over the environment; both set in the environment is ambiguous and
// refused.
func readPasswordFile(o *runOptions, f *boundFlag) error {
	if f.value == "" { // names no file: LEADERD_PASSWORD, if any, stays
		return nil
	}
	if f.source == fromEnv && o.Config.Password != "" {
		return fmt.Errorf("%s and %s: set one, not both", passwordEnv, f.env)
	}
	b, err := os.ReadFile(f.value)
	if err != nil {
		return fmt.Errorf("%s: %v", f.origin(), err)
	}
	pw := strings.TrimSuffix(string(b), "\n")
	o.Config.Password = strings.TrimSuffix(pw, "\r")
	o.PasswordFile = f.value
	return nil
}

// connFlags are the connection options as status, history and the control
// commands bind them: the election's, then the command's own flags, then
// TLS and auth.
type connFlags struct {
	def     runOptions
	options boundOptions
}

func bindElection(s *flagSet, def sidecar.Config) connFlags {
	c := connFlags{def: runOptions{Config: def}}
	c.options = bindOptions(s, c.def, electionOptions())
	return c
}

// bindTLSAuth adds the TLS and auth flags to c. They are listed after the
// command's own flags in usage.
func (c *connFlags) bindTLSAuth(s *flagSet) {
	c.options = append(c.options, bindOptions(s, c.def, tlsAuthOptions())...)
}

// apply copies the connection flags the user gave into cfg, through a
// runOptions as `leaderd run` does.
func (c connFlags) apply(cfg *sidecar.Config) error {
	o := runOptions{Config: *cfg}
	if err := c.options.apply(&o); err != nil {
		return err
	}
	*cfg = o.Config
	return nil
}
