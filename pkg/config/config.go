// Package config reads a program's settings from command-line flags with
// WSMQ_* environment fallbacks: one mechanism for every wsmq binary, so the
// same variable means the same thing everywhere.
//
// Rules, the same for every program:
//   - a flag given on the command line wins, then the environment variable,
//     then the default written once, where the setting is declared;
//   - an environment variable set to "" counts as unset for numbers,
//     durations and booleans, and as the empty value for strings (so
//     WSMQ_AUTH_METRICS_LISTEN= turns that listener off);
//   - booleans are 1/0, true/false, yes/no, on/off (any case);
//   - every problem is reported at once, each naming the flag or variable
//     and the value (never the value of a secret);
//   - WSMQ_* variables one edit away from a known name, and unknown names
//     under the program's own prefix, are errors (likely typos).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Env is the process environment as a Set reads it.
type Env struct {
	// Lookup returns a variable's value and whether it is set.
	Lookup func(string) (string, bool)
	// Environ lists every variable as KEY=VALUE, for typo detection.
	Environ []string
}

// OSEnv is the environment of this process.
func OSEnv() Env { return Env{Lookup: os.LookupEnv, Environ: os.Environ()} }

// MapEnv is an environment made of m (tests, and programs that pass an
// environment on).
func MapEnv(m map[string]string) Env {
	e := Env{Lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
	for k, v := range m {
		e.Environ = append(e.Environ, k+"="+v)
	}
	slices.Sort(e.Environ)
	return e
}

// GetenvEnv adapts an os.Getenv-style function: a variable is set when it is
// not empty. environ may be nil (no typo detection).
func GetenvEnv(getenv func(string) string, environ []string) Env {
	return Env{
		Lookup:  func(k string) (string, bool) { v := getenv(k); return v, v != "" },
		Environ: environ,
	}
}

// Set is the settings of one program.
type Set struct {
	name    string
	prefix  string
	entries []*entry
	checks  []func() error
	fs      *flag.FlagSet
	given   map[string]bool
	others  map[string]bool // variables of other programs under this prefix
}

type entry struct {
	flag, env, def, usage string
	secret                bool // env only; its value never appears in errors
	emptyIsUnset          bool // "" in the environment means the default
	isBool                bool
	redact                func(string) string // shows a value in errors without its secret part
	apply                 func(string) error
	flagValue             *flagValue
}

// flagValue records a flag's text; the entry applies it during Parse.
type flagValue struct {
	e   *entry
	val string
	set bool
}

func (f *flagValue) String() string {
	if f == nil || f.e == nil {
		return ""
	}
	if f.set {
		return f.val
	}
	return f.e.def
}

func (f *flagValue) Set(v string) error { f.val, f.set = v, true; return nil }

func (f *flagValue) IsBoolFlag() bool { return f.e.isBool }

// NewSet makes the settings of the program name. Environment variables
// starting with envPrefix (e.g. "WSMQ_GATEWAY_") must all be known to it;
// "" disables that check.
func NewSet(name, envPrefix string) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &Set{name: name, prefix: envPrefix, fs: fs, given: map[string]bool{}}
}

func (s *Set) add(e *entry) {
	if e.flag != "" {
		e.flagValue = &flagValue{e: e}
		s.fs.Var(e.flagValue, e.flag, e.usage)
	}
	s.entries = append(s.entries, e)
}

// Func declares a setting whose text apply parses. flag or env may be ""
// (environment only, or flag only).
func (s *Set) Func(flag, env, def, usage string, apply func(string) error) {
	s.add(&entry{flag: flag, env: env, def: def, usage: usage, apply: apply})
}

// Secret declares an environment-only setting whose value is never echoed.
func (s *Set) Secret(env, usage string, apply func(string) error) {
	s.add(&entry{env: env, usage: usage, secret: true, apply: apply})
}

// String declares a string setting; each check, when given, validates the
// value.
func (s *Set) String(p *string, flag, env, def, usage string, checks ...func(string) error) {
	s.Func(flag, env, def, usage, func(v string) error {
		for _, c := range checks {
			if err := c(v); err != nil {
				return err
			}
		}
		*p = v
		return nil
	})
}

// Int declares an integer setting in [lo, hi].
func (s *Set) Int(p *int, flag, env string, def, lo, hi int, usage string) {
	s.add(&entry{flag: flag, env: env, def: strconv.Itoa(def), usage: usage, emptyIsUnset: true,
		apply: func(v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("must be an integer between %d and %d", lo, hi)
			}
			*p = n
			return nil
		}})
}

// Float declares a number setting in [lo, hi].
func (s *Set) Float(p *float64, flag, env string, def, lo, hi float64, usage string) {
	s.add(&entry{flag: flag, env: env, def: strconv.FormatFloat(def, 'g', -1, 64), usage: usage, emptyIsUnset: true,
		apply: func(v string) error {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < lo || f > hi {
				return fmt.Errorf("must be a number between %g and %g", lo, hi)
			}
			*p = f
			return nil
		}})
}

// Duration declares a duration setting in [lo, hi].
func (s *Set) Duration(p *time.Duration, flag, env string, def, lo, hi time.Duration, usage string) {
	s.add(&entry{flag: flag, env: env, def: def.String(), usage: usage, emptyIsUnset: true,
		apply: func(v string) error {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil || d < lo || d > hi {
				return fmt.Errorf("must be a duration between %s and %s (e.g. 30s)", lo, hi)
			}
			*p = d
			return nil
		}})
}

// Bool declares a boolean setting; a bare -flag means true.
func (s *Set) Bool(p *bool, flag, env string, def bool, usage string) {
	s.add(&entry{flag: flag, env: env, def: strconv.FormatBool(def), usage: usage, emptyIsUnset: true, isBool: true,
		apply: func(v string) error {
			b, err := ParseBool(v)
			if err != nil {
				return err
			}
			*p = b
			return nil
		}})
}

// Var declares a flag-only setting with its own flag.Value (e.g. a
// repeatable flag); it is not read from the environment.
func (s *Set) Var(v flag.Value, flag, usage string) {
	s.fs.Var(v, flag, usage)
	s.entries = append(s.entries, &entry{flag: flag, usage: usage, apply: func(string) error { return nil }, flagValue: &flagValue{}})
}

// Others names variables under this program's prefix that other wsmq
// programs read (the gateway's WSMQ_AUTH_ADDR under auth's WSMQ_AUTH_), so
// a shared environment does not trip the unknown-variable check.
func (s *Set) Others(names ...string) {
	if s.others == nil {
		s.others = map[string]bool{}
	}
	for _, n := range names {
		s.others[n] = true
	}
}

// Check adds a rule that involves several settings; it runs after every
// setting was applied, and its error is reported with the others.
func (s *Set) Check(f func() error) { s.checks = append(s.checks, f) }

// Parse applies every setting (flag, else environment, else default) and
// returns the arguments left after the flags. The error, when not nil,
// joins every problem found; -h gives a *HelpError alone.
func (s *Set) Parse(args []string, env Env) ([]string, error) {
	rest, err := s.parseFlags(args)
	if err != nil {
		return nil, err
	}
	errs := s.unknownEnv(env.Environ)
	for _, e := range s.entries {
		v, from := e.def, "default"
		if e.flag != "" && s.given[e.flag] {
			v, from = e.flagValue.val, "-"+e.flag
		} else if e.env != "" && env.Lookup != nil {
			if ev, ok := env.Lookup(e.env); ok && (ev != "" || !e.emptyIsUnset) {
				v, from = ev, e.env
			}
		}
		errs = append(errs, e.run(v, from))
	}
	for _, c := range s.checks {
		errs = append(errs, c())
	}
	return rest, Join(errs)
}

// ParseFlags applies only the flags in args, on top of an earlier Parse
// (for flags after a command word, as in `auth serve -listen ...`), and
// returns the arguments left.
func (s *Set) ParseFlags(args []string) ([]string, error) {
	before := map[string]bool{}
	for k := range s.given {
		before[k] = true
	}
	clear(s.given)
	rest, err := s.parseFlags(args)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range s.entries {
		if e.flag != "" && s.given[e.flag] {
			errs = append(errs, e.run(e.flagValue.val, "-"+e.flag))
		}
	}
	for _, c := range s.checks {
		errs = append(errs, c())
	}
	for k := range before {
		s.given[k] = true
	}
	return rest, Join(errs)
}

func (s *Set) parseFlags(args []string) ([]string, error) {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, &HelpError{Usage: s.Usage()}
		}
		return nil, fmt.Errorf("%s: %w (see -h)", s.name, err)
	}
	s.fs.Visit(func(f *flag.Flag) { s.given[f.Name] = true })
	return s.fs.Args(), nil
}

func (e *entry) run(v, from string) error {
	err := e.apply(v)
	if err == nil {
		return nil
	}
	name := from
	if from == "default" {
		name = e.env + " (default)"
	}
	if e.secret {
		return fmt.Errorf("%s: %w", name, err)
	}
	if e.redact != nil {
		v = e.redact(v)
	}
	return fmt.Errorf("%s=%q: %w", name, v, err)
}

// Join reports problems the way Parse does: nil when every error is nil,
// else one error listing each under "config: ". Checks a program runs after
// Parse (secrets, files) use it so that they too report everything at once.
func Join(errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// HelpError is Parse's answer to -h: errors.Is(err, flag.ErrHelp) holds,
// and Usage is the text to print.
type HelpError struct{ Usage string }

func (h *HelpError) Error() string { return h.Usage }

// Unwrap makes errors.Is(err, flag.ErrHelp) true.
func (h *HelpError) Unwrap() error { return flag.ErrHelp }

// NoArgs is a Check-style helper: the arguments Parse left must be none.
func NoArgs(rest []string) error {
	if len(rest) > 0 {
		return fmt.Errorf("config: unexpected arguments %q (see -h)", rest)
	}
	return nil
}

// unknownEnv reports variables under the program's prefix that it does not
// know, and WSMQ_* variables one edit away from a known name.
func (s *Set) unknownEnv(environ []string) []error {
	known := map[string]bool{}
	var names []string
	for _, e := range s.entries {
		if e.env != "" {
			known[e.env] = true
			names = append(names, e.env)
		}
	}
	slices.Sort(names)
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "WSMQ_") || known[name] || s.others[name] {
			continue
		}
		near := ""
		for _, n := range names {
			if editDistance(name, n) <= 1 {
				near = n
				break
			}
		}
		switch {
		case near != "":
			errs = append(errs, fmt.Errorf("unknown variable %s (did you mean %s?)", name, near))
		case s.prefix != "" && strings.HasPrefix(name, s.prefix):
			var own []string
			for _, n := range names {
				if strings.HasPrefix(n, s.prefix) {
					own = append(own, n)
				}
			}
			errs = append(errs, fmt.Errorf("unknown variable %s (known: %s)", name, strings.Join(own, ", ")))
		}
	}
	return errs
}

// Usage describes every flag and variable with its default, for -h.
func (s *Set) Usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage of %s:\n", s.name)
	for _, e := range s.entries {
		name := "(env only)"
		if e.flag != "" {
			name = "-" + e.flag
		}
		env := e.env
		if env == "" {
			env = "(flag only)"
		}
		fmt.Fprintf(&b, "  %-24s %-32s %s", name, env, e.usage)
		if e.def != "" {
			fmt.Fprintf(&b, " (default %q)", e.def)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ParseBool reads wsmq's one boolean syntax.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off", "":
		return false, nil
	}
	return false, errors.New("must be a boolean: 1/0, true/false, yes/no, on/off")
}

// editDistance is the optimal-string-alignment distance of two short ASCII
// names: insertions, deletions, substitutions and swaps of neighbours.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
