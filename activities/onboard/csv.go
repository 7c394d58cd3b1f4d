// Package onboard is bulk onboarding: a job's mailboxes from the CSV operators already keep for
// MigrationWiz or a Microsoft 365 IMAP migration batch, every secret in it stored in the vault
// in the same transaction that registers the mailboxes, so an import is whole or not at all.
// The CSV's secrets never reach a spec, a workflow input, a log or an error message.
package onboard

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// MaxCSVBytes bounds what ParseCSV reads.
const MaxCSVBytes = 64 << 20

// maxLineErrors bounds the lines a CSVError lists.
const maxLineErrors = 50

// Column is one thing a CSV column may say about a mailbox.
type Column string

// Columns, by the name this package gives them; Aliases lists the header spellings accepted.
const (
	ColSourceEmail    Column = "source_email"
	ColSourceUser     Column = "source_user"
	ColSourcePassword Column = "source_password"
	ColSourceRefresh  Column = "source_refresh_token"
	ColDestEmail      Column = "destination_email"
	ColDestUser       Column = "destination_user"
	ColDestPassword   Column = "destination_password"
	ColFolderMap      Column = "folder_map"
	ColSourceType     Column = "source_type"
	ColSourcePath     Column = "source_path"
	ColSourceHost     Column = "source_host"
	ColMerge          Column = "merge"
	ColPresyncMode    Column = "presync_mode"
)

var emailRE = regexp.MustCompile(`^[^@\s]+@[^@\s]+$`)

// headerNormalization are the characters header names are compared without.
const headerNormalization = " _-."

// Aliases are the header names each column is recognized by, compared without case, spaces,
// underscores, dashes or dots: MigrationWiz's bulk-add headers ("Source Email", "Source Login
// Name", "Source Password", "Destination Email", ...), a Microsoft 365 IMAP migration batch's
// ("EmailAddress" is the destination mailbox, "UserName" and "Password" the source login), and
// this package's own names.
var Aliases = map[Column][]string{
	ColSourceEmail:    {"Source Email", "Source Email Address", "Source Address"},
	ColSourceUser:     {"Source Login Name", "Source User", "Source Username", "UserName", "User Name", "Source Login"},
	ColSourcePassword: {"Source Password", "Password"},
	ColSourceRefresh:  {"Source Refresh Token", "Refresh Token", "OAuth Refresh Token"},
	ColDestEmail:      {"Destination Email", "Destination Email Address", "Dest Email", "EmailAddress", "Email Address", "Email"},
	ColDestUser:       {"Destination Login Name", "Destination User", "Destination Username", "Dest User", "Destination Login"},
	ColDestPassword:   {"Destination Password", "Dest Password"},
	ColFolderMap:      {"Folder Map", "Folder Mapping"},
	ColSourceType:     {"Source Type", "Type"},
	ColSourcePath:     {"Source Path", "Path", "PST Path", "File"},
	ColSourceHost:     {"Source Host", "Source Server", "Host"},
	ColMerge:          {"Merge"},
	ColPresyncMode:    {"Presync Mode"},
}

// secretColumns are never quoted back in any message.
var secretColumns = []Column{ColSourcePassword, ColSourceRefresh, ColDestPassword}

func normalizeHeader(h string) string {
	h = strings.TrimPrefix(h, "\ufeff")
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(headerNormalization, r) {
			return -1
		}
		return unicode.ToLower(r)
	}, strings.TrimSpace(h))
}

var byHeader = func() map[string]Column {
	m := map[string]Column{}
	for c, names := range Aliases {
		m[normalizeHeader(string(c))] = c
		for _, n := range names {
			m[normalizeHeader(n)] = c
		}
	}
	return m
}()

// Row is one mailbox of the CSV, its secrets beside it (never in the Mailbox).
type Row struct {
	Line    int             // the line its record starts on, 1 being the header
	Mailbox jobspec.Mailbox // credentials refs empty until the secrets are stored
	Source  vault.Secret    // zero when the row has no source secret
	Dest    vault.Secret    // zero when the row has no destination password
}

func hasSecret(s vault.Secret) bool {
	return s.Password != "" || s.RefreshToken != "" || s.OAuthToken != ""
}

// LineError is one bad line.
type LineError struct {
	Line int    `json:"line"`
	Msg  string `json:"message"`
}

// CSVError lists the bad lines of a CSV (the first maxLineErrors). Its messages name columns,
// never a secret's value.
type CSVError struct {
	File  string      `json:"file"`
	Lines []LineError `json:"lines"`
	More  bool        `json:"more,omitempty"`
}

func (e *CSVError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d bad line(s), nothing imported:", e.File, len(e.Lines))
	for _, l := range e.Lines {
		fmt.Fprintf(&b, "\n  line %d: %s", l.Line, l.Msg)
	}
	if e.More {
		fmt.Fprintf(&b, "\n  (stopping after %d)", maxLineErrors)
	}
	return b.String()
}

func (e *CSVError) add(line int, format string, a ...any) {
	if len(e.Lines) >= maxLineErrors {
		e.More = true
		return
	}
	e.Lines = append(e.Lines, LineError{Line: line, Msg: fmt.Sprintf(format, a...)})
}

func (e *CSVError) err() error {
	if len(e.Lines) == 0 {
		return nil
	}
	return e
}

// ParseCSV reads a mailbox CSV: a header row naming its columns (Aliases; unknown columns are
// refused, so a misspelt one is not silently ignored), then one mailbox per record. Commas or
// semicolons (as spreadsheets save it in some locales) separate fields; a UTF-8 byte order mark
// is ignored. Every bad line is reported, by number, in one *CSVError.
func ParseCSV(r io.Reader, name string) ([]Row, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxCSVBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > MaxCSVBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB", name, MaxCSVBytes>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = delimiter(data)
	cr.FieldsPerRecord = -1
	cerr := &CSVError{File: name}
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		cerr.add(1, "empty file: want a header row, then one mailbox per line")
		return nil, cerr
	}
	if err != nil {
		cerr.add(1, "%s", csvMessage(err))
		return nil, cerr
	}
	cols, ok := headerColumns(header, cerr)
	if !ok {
		return nil, cerr
	}
	var rows []Row
	eachRecord(cr, cerr, func(line int, rec []string) {
		if len(rec) != len(cols) {
			cerr.add(line, "%d fields, the header has %d", len(rec), len(cols))
			return
		}
		if row, ok := parseRow(line, cols, rec, cerr); ok {
			rows = append(rows, row)
		}
	})
	if err := cerr.err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		cerr.add(2, "no mailboxes: want one per line after the header")
		return nil, cerr
	}
	return rows, nil
}

// eachRecord hands f every non-blank record after the header with its line number; a record the
// reader refuses is a line error, and a quoting error ends the reading (the reader cannot
// resynchronize after it).
func eachRecord(cr *csv.Reader, cerr *CSVError, f func(line int, rec []string)) {
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.StartLine
			}
			cerr.add(line, "%s", csvMessage(err))
			if !errors.As(err, &pe) || pe.Err != csv.ErrFieldCount {
				return
			}
			continue
		}
		if !blank(rec) {
			f(line, rec)
		}
	}
}

// delimiter is ';' when the header line has semicolons and no comma.
func delimiter(data []byte) rune {
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if bytes.IndexByte(first, ';') >= 0 && bytes.IndexByte(first, ',') < 0 {
		return ';'
	}
	return ','
}

// csvMessage is encoding/csv's error without the value it choked on (none of its messages
// quote the field, but the position is all an operator needs).
func csvMessage(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("column %d: %v", pe.Column, pe.Err)
	}
	return err.Error()
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

func headerColumns(header []string, cerr *CSVError) ([]Column, bool) {
	cols := make([]Column, len(header))
	seen := map[Column]string{}
	for i, h := range header {
		c, ok := byHeader[normalizeHeader(h)]
		switch {
		case strings.TrimSpace(h) == "":
			cerr.add(1, "column %d has no name", i+1)
		case !ok:
			cerr.add(1, "column %d %q: unknown (known: %s)", i+1, h, knownColumns())
		case seen[c] != "":
			cerr.add(1, "columns %q and %q both give the %s", seen[c], h, c)
		default:
			seen[c] = h
		}
		cols[i] = c
	}
	if seen[ColSourceEmail] == "" && seen[ColDestEmail] == "" {
		cerr.add(1, "no email column: want Source Email or Destination Email (EmailAddress)")
	}
	return cols, len(cerr.Lines) == 0
}

func knownColumns() string {
	names := make([]string, 0, len(Aliases))
	for _, n := range Aliases {
		names = append(names, n[0])
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// parseRow turns one record into a row, adding what is wrong with it to cerr.
func parseRow(line int, cols []Column, rec []string, cerr *CSVError) (Row, bool) {
	v := map[Column]string{}
	for i, c := range cols {
		f := rec[i]
		if !slices.Contains(secretColumns, c) {
			f = strings.TrimSpace(f) // a password's spaces are its own
		}
		v[c] = f
	}
	before := len(cerr.Lines)
	row := Row{Line: line}
	m := &row.Mailbox
	srcEmail, dstEmail := strings.ToLower(v[ColSourceEmail]), strings.ToLower(v[ColDestEmail])
	m.Email = dstEmail
	if m.Email == "" {
		m.Email = srcEmail
	}
	if m.Email == "" {
		cerr.add(line, "no email: give Source Email or Destination Email")
	}
	for _, e := range []struct{ col, v string }{{"source email", srcEmail}, {"destination email", dstEmail}} {
		if e.v != "" && !emailRE.MatchString(e.v) {
			cerr.add(line, "%s %q is not an email address", e.col, e.v)
		}
	}
	m.User = v[ColSourceUser]
	if m.User == "" && srcEmail != "" && srcEmail != m.Email {
		m.User = srcEmail
	}
	m.DestUser = v[ColDestUser]
	m.SourceType = model.SourceType(strings.ToLower(v[ColSourceType]))
	m.SourcePath = v[ColSourcePath]
	m.SourceHost = v[ColSourceHost]
	if p := v[ColPresyncMode]; p != "" {
		m.PresyncMode = model.SyncMode(strings.ToLower(p))
	}
	switch strings.ToLower(v[ColMerge]) {
	case "", "no", "false", "0":
	case "yes", "true", "1":
		m.Merge = true
	default:
		cerr.add(line, "merge: want yes or no")
	}
	if fm := v[ColFolderMap]; fm != "" {
		var err error
		if m.FolderMap, err = parseFolderMap(fm); err != nil {
			cerr.add(line, "folder map: %v", err)
		}
	}
	pw, rt := v[ColSourcePassword], v[ColSourceRefresh]
	switch {
	case pw != "" && rt != "":
		cerr.add(line, "both a source password and a refresh token: give one")
	case rt != "":
		row.Source = vault.Secret{RefreshToken: rt}
		if m.SourceType == "" {
			m.SourceType = model.SourceIMAPOAuth
		} else if m.SourceType != model.SourceIMAPOAuth {
			cerr.add(line, "a refresh token logs in with OAuth: source type must be imap_oauth, not %s", m.SourceType)
		}
	case pw != "":
		row.Source = vault.Secret{Password: pw}
		if m.SourceType == model.SourceIMAPOAuth {
			cerr.add(line, "source type imap_oauth logs in with a refresh token, not a password")
		}
	}
	if hasSecret(row.Source) && fileSourceType(m.SourceType) {
		cerr.add(line, "source type %s reads a file: it needs no source password or token", m.SourceType)
	}
	if hasSecret(row.Source) && strings.ContainsAny(pw+rt, "\r\n") {
		cerr.add(line, "the source secret spans several lines (an unclosed quote?)")
	}
	if dp := v[ColDestPassword]; dp != "" {
		row.Dest = vault.Secret{Password: dp}
		if strings.ContainsAny(dp, "\r\n") {
			cerr.add(line, "the destination password spans several lines (an unclosed quote?)")
		}
	}
	return row, len(cerr.Lines) == before
}

func fileSourceType(t model.SourceType) bool {
	switch t {
	case model.SourcePST, model.SourceMbox, model.SourceEML, model.SourceTgz:
		return true
	}
	return false
}

// parseFolderMap reads a JSON object {"Sent Items": "Sent"} or MigrationWiz's arrows,
// "Sent Items->Sent; Deleted Items->Trash".
func parseFolderMap(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.HasPrefix(s, "{") {
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, errors.New(`not a JSON object of folder names {"Sent Items": "Sent"}`)
		}
		return out, nil
	}
	for _, pair := range strings.Split(s, ";") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		from, to, ok := strings.Cut(pair, "->")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("%q: want Source Folder->Destination Folder, pairs separated by ';'", strings.TrimSpace(pair))
		}
		if _, dup := out[from]; dup {
			return nil, fmt.Errorf("%q is mapped twice", from)
		}
		out[from] = to
	}
	return out, nil
}
