// Package cli is the cutover operator command line. Main is the whole program behind
// starter/main.go, callable in-process with its own streams so tests see exactly what an
// operator sees.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit codes, documented in the README.
const (
	ExitOK       = 0
	ExitFailure  = 1 // the command ran and failed (a workflow failed, a check did not pass)
	ExitUsage    = 2 // bad arguments or configuration
	ExitNotFound = 3 // the job, migration or reference named does not exist
)

// Env is what a command runs with.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// command is one leaf of the command tree.
type command struct {
	path  string // e.g. "vault put"
	short string
	run   func(ctx context.Context, e *Env, args []string) error
}

var commands []command

func register(path, short string, run func(ctx context.Context, e *Env, args []string) error) {
	commands = append(commands, command{path: path, short: short, run: run})
}

// usageError makes Main exit with ExitUsage.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// notFoundError makes Main exit with ExitNotFound.
type notFoundError struct{ err error }

func (n notFoundError) Error() string { return n.err.Error() }
func (n notFoundError) Unwrap() error { return n.err }

// Main runs the command named by args and returns the process exit code.
func Main(ctx context.Context, args []string, e *Env) int {
	cmd, rest := lookup(args)
	if cmd == nil {
		printUsage(e.Stderr, args)
		if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			return ExitOK
		}
		return ExitUsage
	}
	err := cmd.run(ctx, e, rest)
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	fmt.Fprintf(e.Stderr, "cutover %s: %v\n", cmd.path, err)
	var ue usageError
	var nf notFoundError
	switch {
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &nf):
		return ExitNotFound
	default:
		return ExitFailure
	}
}

// lookup finds the longest command path that prefixes args.
func lookup(args []string) (*command, []string) {
	var best *command
	bestLen := 0
	for i := range commands {
		p := strings.Fields(commands[i].path)
		if len(p) > len(args) || len(p) <= bestLen {
			continue
		}
		match := true
		for j := range p {
			if args[j] != p[j] {
				match = false
				break
			}
		}
		if match {
			best, bestLen = &commands[i], len(p)
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[bestLen:]
}

func printUsage(w io.Writer, args []string) {
	prefix := ""
	if len(args) > 0 && args[0] != "help" && !strings.HasPrefix(args[0], "-") {
		prefix = args[0]
	}
	var lines []string
	for _, c := range commands {
		if prefix != "" && !strings.HasPrefix(c.path, prefix) {
			continue
		}
		lines = append(lines, fmt.Sprintf("  %-24s %s", c.path, c.short))
	}
	if len(lines) == 0 { // unknown word: show everything
		fmt.Fprintf(w, "unknown command %q\n", strings.Join(args, " "))
		printUsage(w, nil)
		return
	}
	sort.Strings(lines)
	fmt.Fprintf(w, "usage: cutover <command> [flags]\n\ncommands:\n%s\n\nRun 'cutover <command> -h' for a command's flags; --output json (-o json) prints JSON for scripts.\n"+
		"Exit codes: %d ok, %d the command ran and failed, %d bad arguments or configuration, %d no such job, migration or reference.\n",
		strings.Join(lines, "\n"), ExitOK, ExitFailure, ExitUsage, ExitNotFound)
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(e *Env, path string) *flag.FlagSet {
	fs := flag.NewFlagSet("cutover "+path, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	return fs
}

// parse parses flags given before or after the positional arguments and refuses any but the
// positional ones a command takes.
func parse(fs *flag.FlagSet, args []string, positional int) error {
	_, err := parseAnyOrder(fs, args, positional)
	return err
}

// parseAnyOrder parses flags given before or after the positional arguments ("email approve 42
// --by lead" as well as "email approve --by lead 42") and returns the positional ones, which
// must number positional. After "--" every argument is positional.
func parseAnyOrder(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	pos, err := positionals(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != positional {
		return nil, usagef("want %d argument(s), got %d: %s", positional, len(pos), strings.Join(pos, " "))
	}
	return pos, nil
}

// positionals parses every flag of args, wherever it stands, and returns the other arguments
// in order. Flag errors are usage errors (flag.ErrHelp passes through).
func positionals(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil // the terminator: no flags after it
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
