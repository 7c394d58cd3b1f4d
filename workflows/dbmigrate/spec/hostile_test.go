package spec

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// legalNames are names real schemas have (Northwind's "Order Details"): odd-looking, but
// harmless once quoted. They are in hostile too (the fuzzer starts from them); a spec takes
// them verbatim.
var legalNames = map[string]bool{`a b`: true, `a--b`: true, `a/*b*/`: true, `$1`: true, `public.y`: true, `ÿ`: true}

// namePlaces are the places a name reaches SQL: the spec text to find and its replacement.
var namePlaces = []struct{ where, old, new string }{
	{"source_table", "source_table: office\n", "source_table: %s\n"},
	{"target_table", "target_table: offices\n", "target_table: %s\n"},
	{"key.source", "key: {source: id}", "key: {source: %s}"},
	{"key.target", "key: {source: id}", "key: {source: id, target: %s}"},
	{"column #1 (name) source", "{source: name, type: text}", "{source: %s, target: name, type: text}"},
	{"target", "{source: name, type: text}", "{source: name, target: %s, type: text}"},
	{"target.schema", "sources:", "target: {schema: %s}\nsources:"},
	{"target.ledger_schema", "sources:", "target: {ledger_schema: %s}\nsources:"},
	{"index", "    columns:\n      - {source: name, type: text}", "    indexes: [{name: %s, columns: [name]}]\n    columns:\n      - {source: name, type: text}"},
	{"schema_ops", "entities:", "schema_ops: [{name: op, type: drop_column, table: %s, column: c}]\nentities:"},
	{"schema_ops", "entities:", "schema_ops: [{name: op, type: drop_column, table: t, column: %s}]\nentities:"},
	{"expr", `expr: "trim(concat(first_name, ' ', last_name))"`, "expr: %s"},
	{"incremental.column", "key: {source: id}", "key: {source: id}\n    incremental: {column: %s}"},
}

// TestHostileNamesRefused puts each hostile name in every place a name reaches SQL and checks
// the spec is refused with an error naming the place (never a panic, never accepted).
func TestHostileNamesRefused(t *testing.T) {
	for _, h := range hostile {
		if legalNames[h] {
			continue
		}
		q, _ := json.Marshal(h) // a YAML double-quoted scalar
		for _, pl := range namePlaces {
			doc := strings.Replace(chain, pl.old, strings.Replace(pl.new, "%s", string(q), 1), 1)
			if pl.where == "expr" {
				// Inside an expression the name is raw text; the whole expression is quoted.
				ex, _ := json.Marshal("trim(concat(" + h + ", ' ', last_name))")
				doc = strings.Replace(chain, pl.old, strings.Replace(pl.new, "%s", string(ex), 1), 1)
			}
			if doc == chain {
				t.Fatalf("%s: edit did not apply", pl.where)
			}
			s, err := Parse([]byte(doc))
			if err == nil {
				t.Errorf("%s = %q accepted: %+v", pl.where, h, s)
				continue
			}
			var se *Error
			if !errors.As(err, &se) {
				// Only a bad expression may fail earlier (it is a parse error of the expr).
				t.Errorf("%s = %q: not a spec validation error: %v", pl.where, h, err)
				continue
			}
			if !strings.Contains(err.Error(), pl.where) {
				t.Errorf("%s = %q: error does not name the place: %v", pl.where, h, err)
			}
		}
	}
}

// TestLegalNamesAccepted: names with spaces, punctuation, mixed case or non-ASCII letters are
// accepted in every place a name goes (but inside an expression, whose names are bare words)
// and kept verbatim.
func TestLegalNamesAccepted(t *testing.T) {
	for h := range legalNames {
		q, _ := json.Marshal(h)
		for _, pl := range namePlaces {
			if pl.where == "expr" {
				continue
			}
			doc := strings.Replace(chain, pl.old, strings.Replace(pl.new, "%s", string(q), 1), 1)
			s, err := Parse([]byte(doc))
			if err != nil {
				t.Errorf("%s = %q refused: %v", pl.where, h, err)
				continue
			}
			j, _ := s.JSON()
			if !strings.Contains(string(j), string(q)) {
				t.Errorf("%s = %q not kept verbatim: %s", pl.where, h, j)
			}
		}
	}
}

// TestNULBytesRefused: a NUL anywhere (PostgreSQL text cannot hold one) is refused at parse
// time, named by its path, instead of failing at the first ledger write and being retried as a
// transient error.
func TestNULBytesRefused(t *testing.T) {
	for _, tc := range []struct{ old, new, want string }{
		{"name: clinic", `name: "cli\0nic"`, "name: contains a NUL byte"},
		{`version: "1"`, `version: "1\0"`, "version: contains a NUL byte"},
		{"- name: doctors", `- name: "doc\0tors"`, "entities[2].name: contains a NUL byte"},
		{"{source: active, type: bool, default: 0}", `{source: active, type: bool, default: "0\0"}`, "entities[0].columns[1].default: contains a NUL byte"},
		{"{source: name, type: text}", `{target: name, constant: "a\0b", type: text}`, "entities[0].columns[0].constant: contains a NUL byte"},
		{"path: /tmp/legacy.db", `path: "/tmp/leg\0acy.db"`, `sources."legacy".path: contains a NUL byte`},
		{"legacy: {driver", `"leg\0acy": {driver`, `sources key "leg\x00acy": contains a NUL byte`},
		{"columns:\n      - {source: name, type: text}", "validation: [{column: name, op: eq, value: \"x\\0\"}]\n    columns:\n      - {source: name, type: text}",
			"entities[0].validation[0].value: contains a NUL byte"},
	} {
		doc := strings.Replace(chain, tc.old, tc.new, 1)
		if doc == chain {
			t.Fatalf("%s: edit did not apply", tc.old)
		}
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.new, err, tc.want)
		}
	}
}

// TestQuoteIdentNeutralises: should a name ever skip validation, quoting keeps it one
// identifier (the engine quotes every name it pastes).
func TestQuoteIdentNeutralises(t *testing.T) {
	for in, want := range map[string]string{
		`x"; DROP TABLE y; --`: `"x""; DROP TABLE y; --"`,
		`"`:                    `""""`,
		`plain`:                `"plain"`,
	} {
		if got := QuoteIdent(in); got != want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}
