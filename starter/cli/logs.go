package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/store"
)

func init() {
	register("email logs", "print a mailbox's run log, imapsync-like (the last run; --run N for another, --list for all)",
		runEmailLogs)
}

func runEmailLogs(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "email logs")
	runID := fs.Int64("run", 0, "the run (migration_runs.id) whose log to print; default the mailbox's last run with a log")
	list := fs.Bool("list", false, "list the mailbox's runs and their logs instead")
	out := bindOutput(fs)
	pos, err := parseAnyOrder(fs, args, 2)
	if err != nil {
		return err
	}
	jobID, err := parseJobID(pos[0])
	if err != nil {
		return err
	}
	addr := strings.ToLower(strings.TrimSpace(pos[1]))
	db, err := store.OpenAndMigrate(ctx, databaseURL(e))
	if err != nil {
		return err
	}
	defer db.Close()
	mbs, err := db.ListMailboxes(ctx, jobID)
	if err != nil {
		return err
	}
	var mailboxID int64
	for _, m := range mbs {
		if m.Email == addr {
			mailboxID = m.ID
		}
	}
	if mailboxID == 0 {
		return notFoundError{fmt.Errorf("job %d has no mailbox %s; see 'cutover email status %d'", jobID, addr, jobID)}
	}
	runs, err := db.ListRuns(ctx, jobID, mailboxID)
	if err != nil {
		return err
	}
	if *list {
		return listRuns(e.Stdout, runs, out)
	}
	r, err := pickRun(runs, *runID)
	if err != nil {
		return err
	}
	if out.json() {
		return writeJSON(e.Stdout, r)
	}
	f, err := os.Open(r.LogPath)
	if err != nil {
		// The log is on the worker's host; say so, with what PostgreSQL knows of the run.
		fmt.Fprintf(e.Stdout, "run %d (%s, %s, started %s): its log %s is not readable here (%v); it is on the "+
			"worker's host, under CUTOVER_REPORT_DIR/logs. What the run recorded:\n%s\n", r.ID, r.RunType, r.Status,
			r.StartedAt.UTC().Format(time.RFC3339), r.LogPath, errors.Unwrap(err), string(r.Stats))
		return fmt.Errorf("log of run %d not readable here", r.ID)
	}
	defer f.Close()
	_, err = io.Copy(e.Stdout, f)
	return err
}

// pickRun is run id, or the last run with a log.
func pickRun(runs []store.Run, id int64) (store.Run, error) {
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		if (id == 0 && r.LogPath != "") || r.ID == id {
			if r.LogPath == "" {
				return r, fmt.Errorf("run %d has no log (it ran before per-run logs, or is still running)", r.ID)
			}
			return r, nil
		}
	}
	if id != 0 {
		return store.Run{}, notFoundError{fmt.Errorf("run %d is not one of this mailbox's; --list shows them", id)}
	}
	return store.Run{}, notFoundError{errors.New("no run of this mailbox has a log yet")}
}

func listRuns(w io.Writer, runs []store.Run, out *output) error {
	if out.json() {
		return writeJSON(w, runs)
	}
	t := newTable(w)
	fmt.Fprintln(t, "RUN\tTYPE\tSTATUS\tSTARTED\tLOG")
	for _, r := range runs {
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", strconv.FormatInt(r.ID, 10), r.RunType, r.Status,
			r.StartedAt.UTC().Format(time.RFC3339), dash(r.LogPath))
	}
	return t.Flush()
}
