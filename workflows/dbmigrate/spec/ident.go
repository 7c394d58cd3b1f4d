package spec

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// CheckIdent reports whether name is acceptable as a table, column, schema or index name. Real
// schemas have names with spaces, mixed case and punctuation (Northwind's "Order Details"):
// they are accepted, and quoted wherever they reach SQL (QuoteIdent; backticks for SQLite).
// Refused are names that have no business in a schema and only serve to break out of a quoted
// name or a statement: control characters (newlines, NUL), quote characters (" ' `), the
// backslash and the semicolon; spaces at either end (invisible in every listing); the empty
// name; and names longer than PostgreSQL's 63 bytes (it would cut them).
func CheckIdent(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > 63:
		return fmt.Errorf("name %q is longer than PostgreSQL's 63 bytes", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not valid UTF-8", name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("name %q starts or ends with a space", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune("\"'`\\;", r) {
			return fmt.Errorf("name %q: %q is not allowed in a name (control characters, quotes, backslash, semicolon)", name, r)
		}
	}
	return nil
}

// QuoteIdent quotes an identifier for PostgreSQL and SQLite.
func QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// QuoteQualified quotes schema.name.
func QuoteQualified(schema, name string) string {
	return QuoteIdent(schema) + "." + QuoteIdent(name)
}
