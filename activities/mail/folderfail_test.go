package mail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cutover/cutover/activities/mail/folders"
)

// A folder step that fails because the control database went away (a restart, a crash, a
// server still starting) must end the pass so that Temporal retries it: a pass that went on
// would report the mailbox synced with that folder pending, and the job would leave its
// initial sync with mail not copied (seen when PostgreSQL restarted mid-sync: the approval
// gate then found 47 of 119 messages). An error about the data leaves only the folder pending.
func TestControlDatabaseLossEndsThePass(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		abort bool
	}{
		{"admin shutdown", fmt.Errorf("confirm 37 mail messages of folder 6: %w", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}), true},
		{"server starting up", fmt.Errorf("mail folder counts of mailbox 1: %w", &pgconn.PgError{Severity: "FATAL", Code: "57P03"}), true},
		{"connection failure", fmt.Errorf("record marks: %w", &pgconn.PgError{Code: "08006"}), true},
		{"unique violation", fmt.Errorf("record marks: %w", &pgconn.PgError{Code: "23505"}), false},
		{"destination refuses the folder", errors.New("create folder Archive: [CANNOT] invalid name"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p := &pass{cancel: cancel, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			fr := &folderRun{m: folders.Mapping{Dest: "Archive"}, g: &group{ok: true}}
			fr.m.Source.Name = "Archive"
			p.folderFailed(ctx, fr, c.err)
			if got := p.fatal != nil; got != c.abort {
				t.Errorf("%v: pass ended = %v, want %v", c.err, got, c.abort)
			}
			if got := ctx.Err() != nil; got != c.abort {
				t.Errorf("%v: pass cancelled = %v, want %v", c.err, got, c.abort)
			}
			if fr.finished || fr.g.ok {
				t.Errorf("%v: the folder counts as done (finished %v, group ok %v)", c.err, fr.finished, fr.g.ok)
			}
		})
	}
}
