package demo

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cutover/cutover/examples/mailsystem"
	"github.com/cutover/cutover/starter/client"
	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// MailSystem generates the legacy mail system of examples/mailsystem (emails.db, auth.db) into dir
// and returns the example spec (examples/mailsystem/spec.yaml) bound to those files and to target
// ("" = the worker's DATABASE_URL).
func MailSystem(ctx context.Context, dir, target string, accounts, emails int) (*spec.Spec, *mailsystem.Data, error) {
	data, err := mailsystem.Generate(ctx, dir, accounts, emails)
	if err != nil {
		return nil, nil, fmt.Errorf("generate the mail system: %w", err)
	}
	sp, err := spec.Load(mailsystem.SpecPath())
	if err != nil {
		return nil, nil, err
	}
	sp.Sources["emails"] = spec.Source{Driver: "sqlite", Path: data.EmailsDB}
	sp.Sources["auth"] = spec.Source{Driver: "sqlite", Path: data.AuthDB}
	sp.Target.DSN = target
	return sp, data, nil
}

// DBDriver takes a started incremental migration through its phases: the full load, catch-up
// passes while the application keeps writing (Data.Append), the cutover, the final pass and
// the validation.
type DBDriver struct {
	C    *client.Client
	ID   string
	Data *mailsystem.Data
	Out  io.Writer
	Poll time.Duration // default 500ms
}

func (d *DBDriver) logf(action, format string, a ...any) {
	if d.Out != nil {
		fmt.Fprintf(d.Out, "%s  %-14s %s\n", time.Now().Format("15:04:05"), action, fmt.Sprintf(format, a...))
	}
}

func (d *DBDriver) wait(ctx context.Context, what string,
	done func(dbmigrateapi.State) bool) (dbmigrateapi.State, error) {
	poll := d.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	last := ""
	st, err := d.C.WaitDB(ctx, d.ID, poll, func(st dbmigrateapi.State) bool {
		if line := fmt.Sprintf("phase %s, %s, %.1f%%, %d/%d entities", st.Phase, st.Status, st.ProgressPercent,
			st.CompletedEntities, st.TotalEntities); line != last {
			last = line
			d.logf("migration", "%s", line)
		}
		return done(st)
	})
	if err != nil {
		return st, fmt.Errorf("waiting for %s: %w", what, err)
	}
	return st, nil
}

// Run drives the migration to its end and returns the final state.
func (d *DBDriver) Run(ctx context.Context) (dbmigrateapi.State, error) {
	st, err := d.wait(ctx, "the catch-up passes", func(st dbmigrateapi.State) bool { return st.Phase == dbmigrateapi.PhaseCatchingUp })
	if err != nil {
		return st, err
	}
	for _, e := range st.Entities {
		d.logf("loaded", "%-10s %d rows (%d quarantined) at %.0f rows/s", e.Name, e.Processed, e.Failed, e.Throughput)
	}
	if d.Data != nil {
		if err := d.Data.Append(ctx, 3, 50, 24*time.Hour); err != nil {
			return st, err
		}
		d.logf("application", "kept writing: 3 accounts, 6 sessions, 50 emails")
		passes := st.Passes
		if st, err = d.wait(ctx, "a catch-up pass", func(st dbmigrateapi.State) bool { return st.Passes > passes }); err != nil {
			return st, err
		}
	}
	if err := d.C.RequestCutover(ctx, d.ID, Operator, "the application's last writes are in a catch-up pass"); err != nil {
		return st, err
	}
	d.logf(Operator, "cutover (signal): final pass, then validation")
	st, err = d.C.DBResult(ctx, d.ID)
	if err != nil {
		return st, err
	}
	for _, v := range st.Validation {
		d.logf("validation", "%-10s %s (%d failed, %d warning checks)", v.Entity, v.Status, v.Failures, v.Warnings)
	}
	d.logf("migration", "%s; final pass %.2f s", st.Status, st.FinalPassSeconds)
	return st, nil
}
