package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cutover/cutover/starter/client"
)

// Output formats every command offers with --output (-o).
const (
	outputTable = "table"
	outputJSON  = "json"
)

// output is a command's --output flag.
type output struct{ format string }

// bindOutput adds --output/-o (and --json, the older spelling) to fs.
func bindOutput(fs *flag.FlagSet) *output {
	o := &output{format: outputTable}
	set := func(v string) error {
		switch v {
		case outputTable, "text", "":
			o.format = outputTable
		case outputJSON:
			o.format = outputJSON
		default:
			return fmt.Errorf("%q: want table or json", v)
		}
		return nil
	}
	fs.Func("output", "output format: table (for people) or json (for scripts)", set)
	fs.Func("o", "shorthand for --output", set)
	fs.BoolFunc("json", "same as --output json", func(string) error { o.format = outputJSON; return nil })
	return o
}

func (o *output) json() bool { return o.format == outputJSON }

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable is the tabwriter every table uses: two spaces between columns.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// isTerminal reports whether w is a terminal (progress is then redrawn in place).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// fromClient turns the client package's errors into the CLI's exit codes, keeping the
// message an operator needs and adding how to find the right id.
func fromClient(err error, listCmd string) error {
	if err == nil {
		return nil
	}
	var refused *client.RefusedError
	switch {
	case errors.Is(err, client.ErrNotFound):
		return notFoundError{fmt.Errorf("%w; list them with '%s'", err, listCmd)}
	case errors.As(err, &refused):
		return errors.New(refused.Reason)
	}
	return err
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return "<1s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func fmtAge(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02")
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// specArgument is the spec file of a start command: --spec FILE, or the one positional
// argument ("-" reads stdin). Flags may come before or after it.
func specArgument(fs *flag.FlagSet, args []string, specFlag *string) (string, error) {
	pos, err := positionals(fs, args)
	if err != nil {
		return "", err
	}
	switch {
	case *specFlag != "" && len(pos) == 0:
		return *specFlag, nil
	case *specFlag != "":
		return "", usagef("give the spec once: --spec %s or %s", *specFlag, strings.Join(pos, " "))
	case len(pos) != 1:
		return "", usagef("want 1 argument(s), got %d: %s", len(pos), strings.Join(pos, " "))
	}
	return pos[0], nil
}
