package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// option defines one flag once. The table of options (runOptionTable)
// drives parsing, the LEADERD_* twin, --help, the conversion and its error
// message, the defaults that follow a related flag, and the start-up log.
type option struct {
	name  string // without dashes: "on-promote"; its variable is envName(name)
	arg   string // placeholder in --help: "CMD"; none for a switch
	usage string // its line in --help
	// field points at where the value lands: a *string, *[]string
	// (comma-separated), *int, *bool (a switch), *time.Duration or
	// *slog.Level. Its type picks the conversion, the default --help shows
	// and how the start-up log writes the value.
	field func(o *runOptions) any
	// set, when given, stores the value instead of the conversion the
	// field's type implies: for a value that must be trimmed, checked
	// against a list or read from a file. Its errors name f.origin().
	set func(o *runOptions, f *boundFlag) error
	// defText, when given, is the default --help shows instead of the
	// field's default value: a rule, or a description.
	defText string
	// follows names the related flag this one's default follows: when only
	// that flag is given, derive recomputes this one from it, so a default
	// never turns invalid when a related flag changes.
	follows string
	derive  func(o *runOptions)
	// secret values (a token, a command line or URL that may hold
	// credentials, the password) are logged only as <name>_set.
	secret bool
	// envOnly has no flag, only the variable, so the value never shows in
	// ps output or shell history; note says so in --help.
	envOnly bool
	note    string // printed after the flags in --help
}

// isSwitch reports whether the option is an on/off flag.
func (opt option) isSwitch() bool {
	_, ok := opt.field(&runOptions{}).(*bool)
	return ok
}

// defaultText is the default --help shows: defText, or the field's value
// in def, "" showing none.
func (opt option) defaultText(def runOptions) string {
	if opt.defText != "" {
		return opt.defText
	}
	switch v := opt.field(&def).(type) {
	case *string:
		return *v
	case *[]string:
		return strings.Join(*v, ",")
	case *int:
		return strconv.Itoa(*v)
	case *bool:
		return strconv.FormatBool(*v)
	case *time.Duration:
		return durationText(*v)
	case *slog.Level:
		return strings.ToLower(v.String())
	}
	panic(fmt.Sprintf("option --%s: no default text for %T", opt.name, opt.field(&def)))
}

// logAttr is the option's key and value in the start-up log: the flag's
// name in snake case and the value in effect, or for a secret
// <name>_set and whether it is set.
func (opt option) logAttr(o *runOptions) (string, any) {
	key := strings.ReplaceAll(opt.name, "-", "_")
	v := opt.field(o)
	if opt.secret {
		s, ok := v.(*string)
		if !ok {
			panic(fmt.Sprintf("option --%s: a secret must be a string, not %T", opt.name, v))
		}
		return key + "_set", *s != ""
	}
	switch v := v.(type) {
	case *string:
		return key, *v
	case *[]string:
		return key, strings.Join(*v, ",")
	case *int:
		return key, *v
	case *bool:
		return key, *v
	case *time.Duration:
		return key, v.String()
	case *slog.Level:
		return key, v.String()
	}
	panic(fmt.Sprintf("option --%s: cannot log %T", opt.name, v))
}

// logAttrs are the start-up log's key/values for every option, in table
// order.
func logAttrs(opts []option, o runOptions) []any {
	attrs := make([]any, 0, 2*len(opts))
	for _, opt := range opts {
		k, v := opt.logAttr(&o)
		attrs = append(attrs, k, v)
	}
	return attrs
}

// boundOption is an option registered in a flagSet, with the flag that
// holds what the user gave.
type boundOption struct {
	option
	flag *boundFlag
}

type boundOptions []boundOption

// bindOptions registers opts in s; def gives the defaults --help shows.
func bindOptions(s *flagSet, def runOptions, opts []option) boundOptions {
	bound := make(boundOptions, 0, len(opts))
	for _, opt := range opts {
		f := s.add(&boundFlag{
			name: opt.name, env: envName(opt.name), arg: opt.arg, usage: opt.usage,
			defText: opt.defaultText(def), isBool: opt.isSwitch(), envOnly: opt.envOnly,
		})
		if opt.note != "" {
			s.notes = append(s.notes, opt.note)
		}
		bound = append(bound, boundOption{option: opt, flag: f})
	}
	return bound
}

// apply stores in o every value the user gave, in table order (so the
// first bad value is the one reported), then lets each default that follows
// a related flag follow it. A flag not given keeps o's default.
func (bs boundOptions) apply(o *runOptions) error {
	for _, b := range bs {
		if b.flag.isSet() {
			if err := b.store(o); err != nil {
				return err
			}
		}
	}
	for _, b := range bs {
		if b.follows != "" && !b.flag.isSet() && bs.lookup(b.follows).isSet() {
			b.derive(o)
		}
	}
	return nil
}

// store converts the flag's value into the field.
func (b boundOption) store(o *runOptions) error {
	if b.set != nil {
		return b.set(o, b.flag)
	}
	var err error
	switch v := b.field(o).(type) {
	case *string:
		*v = b.flag.value
	case *[]string:
		*v = splitList(b.flag.value)
	case *int:
		*v, err = b.flag.count()
	case *bool:
		*v, err = b.flag.on()
	case *time.Duration:
		*v, err = b.flag.duration()
	default:
		panic(fmt.Sprintf("option --%s: no conversion to %T; give it a set func", b.name, v))
	}
	return err
}

// lookup is the flag of the option named name.
func (bs boundOptions) lookup(name string) *boundFlag {
	for _, b := range bs {
		if b.name == name {
			return b.flag
		}
	}
	panic("no option --" + name)
}
