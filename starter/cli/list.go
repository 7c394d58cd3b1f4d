package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
)

func init() {
	register("list", "list migrations (email jobs and database migrations), newest first", listCommand(""))
	register("email list", "list email jobs, newest first (filter with --phase, --gate, --running)", listCommand(client.KindEmail))
	register("db list", "list database migrations, newest first (filter with --phase, --status, --running)", listCommand(client.KindDatabase))
}

func listCommand(kind string) func(ctx context.Context, e *Env, args []string) error {
	return func(ctx context.Context, e *Env, args []string) error {
		path := "list"
		if kind == client.KindEmail {
			path = "email list"
		} else if kind == client.KindDatabase {
			path = "db list"
		}
		fs, tf, out := commandFlags(e, path)
		var o client.ListOptions
		o.Kind = kind
		if kind == "" {
			fs.StringVar(&o.Kind, "kind", "", "email or database (default both)")
		}
		fs.StringVar(&o.Phase, "phase", "", "only this MigrationPhase, e.g. delta_sync or loading")
		fs.StringVar(&o.Gate, "gate", "", "only this MigrationGate (email): blocked, warning, ready_for_dns")
		fs.StringVar(&o.Status, "status", "", "only this MigrationStatus, e.g. running, waiting, failed, completed")
		fs.StringVar(&o.Domain, "domain", "", "only this MigrationDomain (email)")
		fs.StringVar(&o.Query, "query", "", `an extra visibility query, e.g. "TenantID = 7"`)
		fs.BoolVar(&o.Open, "running", false, "only running workflows")
		fs.IntVar(&o.Limit, "limit", 50, "at most this many")
		if err := parse(fs, args, 0); err != nil {
			return err
		}
		if o.Kind != "" && o.Kind != client.KindEmail && o.Kind != client.KindDatabase {
			return usagef("--kind %q: want email or database", o.Kind)
		}
		if known := knownPhases(o.Kind); o.Phase != "" && !slices.Contains(known, o.Phase) {
			return usagef("--phase %q: want one of %s", o.Phase, strings.Join(known, ", "))
		}
		c, err := tf.client(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		list, err := c.List(ctx, o)
		if err != nil {
			return err
		}
		if out.json() {
			if list == nil {
				list = []client.Summary{}
			}
			return writeJSON(e.Stdout, list)
		}
		printList(e.Stdout, list, time.Now())
		return nil
	}
}

// knownPhases are the MigrationPhase values of a kind of migration ("" both), so a misspelt
// phase is refused instead of listing nothing.
func knownPhases(kind string) []string {
	var out []string
	if kind != client.KindDatabase {
		for _, p := range append(slices.Clone(model.Phases), model.PhaseFailed) {
			out = append(out, string(p))
		}
	}
	if kind != client.KindEmail {
		for _, p := range dbmigrateapi.Phases {
			out = append(out, string(p))
		}
	}
	return out
}

// printList is the list table.
func printList(w io.Writer, list []client.Summary, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no migrations match; 'cutover email start' or 'cutover db start' starts one")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "KIND\tID\tPHASE\tGATE\tSTATUS\tSYNCED\tDOMAIN\tWORKFLOW\tSTARTED")
	for _, m := range list {
		exec := ""
		if m.Execution != "Running" && m.Execution != "Completed" {
			exec = " (" + m.Execution + ")" // terminated, failed, timed out: not the migration's own ending
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s%s\t%.1f%%\t%s\t%s\t%s\n", m.Kind, m.ID, dash(m.Phase), dash(m.Gate), dash(m.Status), exec,
			m.SyncPercent, dash(m.Domain), m.WorkflowID, fmtAge(m.Started, now))
	}
	tw.Flush()
}
