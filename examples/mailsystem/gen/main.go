// Command gen writes the legacy mail system that examples/mailsystem/spec.yaml migrates:
// emails.db and auth.db in the spec's data directory (its relative sqlite paths), or -dir.
//
//	go run ./examples/mailsystem/gen                 # 1,000 accounts, 10,000 emails
//	go run ./examples/mailsystem/gen -seed002        # the production size: 250K accounts, 100K sessions, 261K emails
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cutover/cutover/examples/mailsystem"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	dir := fs.String("dir", filepath.Join(filepath.Dir(mailsystem.SpecPath()), "data"), "where to write emails.db and auth.db")
	accounts := fs.Int("accounts", 1000, "accounts (two sessions each)")
	emails := fs.Int("emails", 10000, "emails, spread over 90 days")
	seed002 := fs.Bool("seed002", false, "the mail system's production size instead (250K accounts, 100K sessions, 261K emails)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	var d *mailsystem.Data
	var err error
	if *seed002 {
		d, err = mailsystem.GenerateSized(ctx, *dir, mailsystem.Seed002)
	} else {
		d, err = mailsystem.Generate(ctx, *dir, *accounts, *emails)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s and %s: %d accounts, %d sessions, %d emails\n", d.AuthDB, d.EmailsDB, d.Accounts, d.Sessions, d.Emails)
	return nil
}
