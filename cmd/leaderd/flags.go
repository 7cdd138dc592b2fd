package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// envPrefix starts every environment twin of a flag: --on-promote is
// LEADERD_ON_PROMOTE.
const envPrefix = "LEADERD_"

// lookupEnv is os.LookupEnv, injected so tests do not depend on (or change)
// the process environment.
type lookupEnv func(key string) (string, bool)

// envName is a flag's environment twin: LEADERD_ + upper snake case.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// source says where a flag's value came from, so errors can name what the
// user actually typed.
type source int

const (
	fromDefault source = iota
	fromEnv
	fromFlag
)

// boundFlag is one string flag with an environment twin. Values are kept as
// strings and converted after parsing, so a conversion error can name either
// the flag or the environment variable.
type boundFlag struct {
	name    string // without dashes: "on-promote"
	env     string // LEADERD_ON_PROMOTE
	arg     string // placeholder in usage: "CMD"
	usage   string
	defText string // default as shown in usage; empty shows nothing
	value   string
	source  source
	isBool  bool // a switch: --name alone sets it; the env twin takes true/false
	envOnly bool // no flag, only the variable (the etcd password)
}

// IsBoolFlag lets the flag package accept a switch without a value.
func (f *boundFlag) IsBoolFlag() bool { return f.isBool }

// on parses a switch's value.
func (f *boundFlag) on() (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(f.value))
	if err != nil {
		return false, fmt.Errorf("%s: want true or false, got %q", f.origin(), f.value)
	}
	return b, nil
}

// String and Set make boundFlag a flag.Value.
func (f *boundFlag) String() string { return f.value }

func (f *boundFlag) Set(s string) error {
	f.value, f.source = s, fromFlag
	return nil
}

// origin is what to call this flag in an error message.
func (f *boundFlag) origin() string {
	if f.source == fromEnv {
		return f.env
	}
	return "--" + f.name
}

// isSet reports whether the user gave a value, on the command line or in
// the environment.
func (f *boundFlag) isSet() bool { return f.source != fromDefault }

// duration parses the value as a Go duration ("15s", "1m30s").
func (f *boundFlag) duration() (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(f.value))
	if err != nil {
		return 0, fmt.Errorf("%s: invalid duration %q", f.origin(), f.value)
	}
	return d, nil
}

// count parses the value as a whole number.
func (f *boundFlag) count() (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(f.value))
	if err != nil {
		return 0, fmt.Errorf("%s: invalid number %q", f.origin(), f.value)
	}
	return n, nil
}

// boolFlag is a plain flag without an environment twin (output switches
// such as status --json, which a global environment should not flip).
type boolFlag struct {
	name, usage string
	value       bool
}

// flagSet is a flag.FlagSet whose string flags also read LEADERD_*
// variables. The command line wins over the environment; an empty
// variable counts as unset (compose files often expand unset variables to
// empty strings).
type flagSet struct {
	cmd      string // "run" or "status", for usage
	synopsis string
	about    string
	fs       *flag.FlagSet
	env      lookupEnv
	flags    []*boundFlag
	bools    []*boolFlag
	notes    []string // extra lines printed after the flags in usage
}

func newFlagSet(cmd, synopsis, about string, env lookupEnv) *flagSet {
	fs := flag.NewFlagSet("leaderd "+cmd, flag.ContinueOnError)
	// flag prints errors and usage to Output; parse turns them into one
	// line instead, and --help prints usage itself.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if env == nil {
		env = os.LookupEnv
	}
	return &flagSet{cmd: cmd, synopsis: synopsis, about: about, fs: fs, env: env}
}

// str registers a string flag with its environment twin. defText is the
// default as usage shows it; empty shows def.
func (s *flagSet) str(name, arg, def, defText, usage string) *boundFlag {
	if defText == "" {
		defText = def
	}
	return s.add(&boundFlag{name: name, env: envName(name), arg: arg, usage: usage, defText: defText, value: def})
}

// add registers f: on the command line unless it is envOnly, and in the
// environment.
func (s *flagSet) add(f *boundFlag) *boundFlag {
	if !f.envOnly {
		s.fs.Var(f, f.name, f.usage)
	}
	s.flags = append(s.flags, f)
	return f
}

// boolean registers a flag that has no environment twin.
func (s *flagSet) boolean(name, usage string) *boolFlag {
	b := &boolFlag{name: name, usage: usage}
	s.fs.BoolVar(&b.value, name, false, usage)
	s.bools = append(s.bools, b)
	return b
}

// errHelp is returned by parse for -h, -help and --help.
var errHelp = flag.ErrHelp

// parse reads the command line, then fills every flag not given there from
// its environment twin. Errors are one line without the command prefix.
func (s *flagSet) parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errors.New(oneLine(err.Error()))
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see leaderd %s --help)", s.fs.Arg(0), s.cmd)
	}
	for _, f := range s.flags {
		if f.source == fromFlag {
			continue
		}
		if v, ok := s.env(f.env); ok && v != "" {
			f.value, f.source = v, fromEnv
		}
	}
	return nil
}

var flagMention = regexp.MustCompile(`--([a-z][a-z-]*[a-z])`)

// explain appends, to an error that names flags (as Config.Validate's do),
// which of those flags were set through the environment, so the user can
// find the value they typed: "--ttl: ... (--ttl from LEADERD_TTL)".
func (s *flagSet) explain(err error) error {
	var notes []string
	seen := map[string]bool{}
	for _, m := range flagMention.FindAllStringSubmatch(err.Error(), -1) {
		name := m[1]
		if seen[name] {
			continue
		}
		seen[name] = true
		for _, f := range s.flags {
			if f.name == name && f.source == fromEnv {
				notes = append(notes, "--"+name+" from "+f.env)
			}
		}
	}
	if len(notes) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(notes, ", "))
}

// maxInlineDefault is the longest default usage prints on the variable's
// line; a longer one (a rule such as "min(1s, --health-interval)") gets a
// line of its own, so the help stays within 80 columns.
const maxInlineDefault = 24

// usage prints the synopsis and every flag with its default and its
// environment variable, one flag per two lines so the text stays readable
// in 80 columns.
func (s *flagSet) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: leaderd %s %s\n\n%s\n\nFlags (each can also come from the $LEADERD_ variable shown; a flag wins):\n", s.cmd, s.synopsis, s.about)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range s.flags {
		if f.envOnly { // a note says how to set it
			continue
		}
		fmt.Fprintf(tw, "  --%s\t%s\n", strings.TrimSpace(f.name+" "+f.arg), f.usage)
		switch {
		case len(f.defText) > maxInlineDefault: // a rule: a line of its own
			fmt.Fprintf(tw, "  \t$%s\n  \tdefault %s\n", f.env, f.defText)
		case f.defText != "":
			fmt.Fprintf(tw, "  \t$%s, default %s\n", f.env, f.defText)
		default:
			fmt.Fprintf(tw, "  \t$%s\n", f.env)
		}
	}
	for _, b := range s.bools {
		fmt.Fprintf(tw, "  --%s\t%s\n", b.name, b.usage)
	}
	fmt.Fprintf(tw, "  -h, --help\tshow this help\n")
	_ = tw.Flush()
	for _, n := range s.notes {
		fmt.Fprintf(w, "\n%s\n", n)
	}
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items (a trailing comma is a typo, not an endpoint).
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// oneLine folds a multi-line message into one line.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
}

// durationText prints whole seconds as "60s" (as README.md's flag table writes them),
// not time.Duration's "1m0s".
func durationText(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
