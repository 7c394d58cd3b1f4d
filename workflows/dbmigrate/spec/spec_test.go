package spec

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
)

const chain = `
name: clinic
version: "1"
sources:
  legacy: {driver: sqlite, path: /tmp/legacy.db}
entities:
  - name: offices
    source_table: office
    target_table: offices
    key: {source: id}
    columns:
      - {source: name, type: text}
      - {source: active, type: bool, default: 0}
  - name: profiles
    source_table: dispatch_user
    target_table: profiles
    key: {source: id}
    columns:
      - {source: email, target: email, type: text}
      - {target: full_name, expr: "trim(concat(first_name, ' ', last_name))", type: text}
      - {source: legacy_flag, drop: true}
  - name: doctors
    source_table: doctor
    target_table: doctors
    key: {source: id}
    columns:
      - {source: office_id, references: offices}
      - {source: profile_id, references: profiles}
`

func TestParseValidSpecAppliesDefaults(t *testing.T) {
	s, err := Parse([]byte(chain))
	if err != nil {
		t.Fatal(err)
	}
	if s.BatchSize != DefaultBatchSize {
		t.Fatalf("s.BatchSize = %v, want %v (DefaultBatchSize); defaults not applied: %+v",
			s.BatchSize, DefaultBatchSize, s)
	}
	if s.Target.Schema != "public" {
		t.Fatalf("s.Target.Schema = %v, want \"public\"; defaults not applied: %+v", s.Target.Schema, s)
	}
	if s.Target.LedgerSchema != "cutover" {
		t.Fatalf("s.Target.LedgerSchema = %v, want \"cutover\"; defaults not applied: %+v", s.Target.LedgerSchema, s)
	}
	e, _ := s.Entity("offices")
	if e.Source != "legacy" {
		t.Fatalf("e.Source = %v, want \"legacy\"; entity defaults: %+v", e.Source, e)
	}
	if e.Key.Target != "id" {
		t.Fatalf("e.Key.Target = %v, want \"id\"; entity defaults: %+v", e.Key.Target, e)
	}
	if e.Key.Mode != KeyModeUUID {
		t.Fatalf("e.Key.Mode = %v, want %v (KeyModeUUID); entity defaults: %+v", e.Key.Mode, KeyModeUUID, e)
	}
	if e.EntityType != "offices" {
		t.Fatalf("e.EntityType = %v, want \"offices\"; entity defaults: %+v", e.EntityType, e)
	}
	if c := e.Columns[1]; c.Type != "boolean" {
		t.Fatalf("c.Type = %v, want \"boolean\"; bool alias / yaml int default: %+v", c.Type, c)
	} else if c.Default == nil {
		t.Fatalf("c.Default is nil; bool alias / yaml int default: %+v", c)
	} else if *c.Default != "0" {
		t.Fatalf("*c.Default = %v, want \"0\"; bool alias / yaml int default: %+v", *c.Default, c)
	}
	d, _ := s.Entity("doctors")
	if d.Columns[0].Type != "uuid" {
		t.Fatalf("reference column type = %q, want uuid", d.Columns[0].Type)
	}
	order, err := s.Order()
	if err != nil {
		t.Fatalf("err: want nil; order = %v, %v", order, err)
	}
	if strings.Join(order, ",") != "offices,profiles,doctors" {
		t.Fatalf("strings.Join(order, \",\") = %v, want \"offices,profiles,doctors\"; order = %v, %v",
			strings.Join(order, ","), order, err)
	}
	if deps := s.Dependencies()["doctors"]; strings.Join(deps, ",") != "offices,profiles" {
		t.Fatalf("deps = %v", deps)
	}
	// The JSON form round-trips (it is what workflow inputs carry).
	b, err := s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Parse(b)
	if err != nil {
		t.Fatalf("reparse JSON: %v", err)
	}
	if s2.NamespaceUUID() != s.NamespaceUUID() {
		t.Fatalf("want s2.NamespaceUUID() == s.NamespaceUUID(); JSON round trip changed the spec")
	}
	if len(s2.Entities) != 3 {
		t.Fatalf("len(s2.Entities) = %v, want 3; JSON round trip changed the spec", len(s2.Entities))
	}
}

func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown type", "{source: name, type: text}", "{source: name, type: texte}", `type "texte" is not a supported type`},
		{"bad cast type", "{source: name, type: text}", `{source: name, type: "varchar(10); drop"}`, `type "varchar(10); drop"`},
		{"injection in table", "target_table: offices\n", "target_table: 'offices\"; DROP TABLE x; --'\n", `name "offices\"; DROP TABLE x; --"`},
		{"unknown reference", "references: offices}", "references: officez}", `references unknown entity "officez"`},
		{"unknown function", "trim(concat(", "system(concat(", `unknown function "system"`},
		{"password in dsn", "{driver: sqlite, path: /tmp/legacy.db}", "{driver: postgres, dsn: 'postgres://u:secret@h/db'}", "must not carry a password"},
		{"cycle", "key: {source: id}\n    columns:\n      - {source: name, type: text}",
			"key: {source: id}\n    depends_on: [doctors]\n    columns:\n      - {source: name, type: text}", "dependency cycle: offices → doctors → offices"},
		{"source table read twice", "source_table: doctor\n", "source_table: office\n", `source_table "office" is already read by entity "offices"`},
		{"two values", "{target: full_name, expr:", "{target: full_name, source: x, expr:", "give exactly one of source, constant, expr"},
		{"logical capture of sqlite", "path: /tmp/legacy.db}", "path: /tmp/legacy.db, capture: logical}",
			`capture "logical": want triggers or key_cursor for a sqlite source`},
		{"unknown field", "version:", "batch_sizee: 3\nversion:", "field batch_sizee not found"},
		{"unknown validation column", "key: {source: id}\n    columns:\n      - {source: email", "key: {source: id}\n    validation: [{column: emial, op: not_null}]\n    columns:\n      - {source: email", `column "emial" is not a target column`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(chain, tc.old, tc.new, 1)
			if doc == chain {
				t.Fatal("edit did not apply")
			}
			_, err := Parse([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatal("error echoes the password")
			}
		})
	}
}

func TestTopoOrderNamesCycle(t *testing.T) {
	_, err := TopoOrder([]string{"a", "b", "c", "d"}, map[string][]string{"a": {"c"}, "b": {"a"}, "c": {"b"}})
	if !errors.Is(err, ErrCycle) || !strings.Contains(err.Error(), "a → c → b → a") {
		t.Fatalf("err = %v", err)
	}
	order, err := TopoOrder([]string{"orders", "offices", "patients"}, map[string][]string{"orders": {"patients"}, "patients": {"offices"}})
	if err != nil {
		t.Fatalf("err: want nil; order = %v, %v", order, err)
	}
	if strings.Join(order, ",") != "offices,patients,orders" {
		t.Fatalf("strings.Join(order, \",\") = %v, want \"offices,patients,orders\"; order = %v, %v",
			strings.Join(order, ","), order, err)
	}
}

func TestExpr(t *testing.T) {
	get := func(m map[string]string) func(string) *string {
		return func(c string) *string {
			v, ok := m[c]
			if !ok {
				return nil
			}
			return &v
		}
	}
	row := get(map[string]string{"first": " Ada ", "last": "Lovelace", "mail": "ADA@X.ORG"})
	for _, tc := range []struct{ expr, want string }{
		{"trim(concat(first, ' ', last))", "Ada  Lovelace"},
		{"lower(mail)", "ada@x.org"},
		{"coalesce(missing, 'n/a')", "n/a"},
		{"substr(last, 2, 3)", "ove"},
		{"replace(mail, '@', ' at ')", "ADA at X.ORG"},
		{"concat('it''s ', 42)", "it's 42"},
	} {
		e, err := ParseExpr(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got := e.Eval(row); got == nil {
			t.Errorf("got is nil; %s = %v, want %q", tc.expr, got, tc.want)
		} else if *got != tc.want {
			t.Errorf("*got = %v, want %v (tc.want); %s = %v, want %q", *got, tc.want, tc.expr, got, tc.want)
		}
	}
	if e, _ := ParseExpr("nullif(missing, 'x')"); e.Eval(row) != nil {
		t.Error("nullif of NULL is not NULL")
	}
	for _, bad := range []string{"lower(a", "drop(a)", "lower(a, b)", "a; b", "'open", "lower(a) b"} {
		if _, err := ParseExpr(bad); err == nil {
			t.Errorf("ParseExpr(%q) accepted", bad)
		}
	}
}

func TestKeyUUIDModes(t *testing.T) {
	s, err := Parse([]byte(strings.Replace(chain, "    target_table: offices\n    key: {source: id}", "    target_table: offices\n    key: {source: id, uuid: ordered}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	off, _ := s.Entity("offices")
	prof, _ := s.Entity("profiles")
	ns := s.NamespaceUUID()
	a, b := off.KeyUUID(ns, "9"), off.KeyUUID(ns, "10")
	if a.Version() != 8 {
		t.Fatalf("want a.Version() == 8; ordered: %s %s (version %d)", a, b, a.Version())
	}
	if a.Variant() != uuid.RFC4122 {
		t.Fatalf("want a.Variant() == uuid.RFC4122; ordered: %s %s (version %d)", a, b, a.Version())
	}
	if a.String() >= b.String() {
		t.Fatalf("a.String() = %v, want < b.String(); ordered: %s %s (version %d)", a.String(), a, b, a.Version())
	}
	if a == off.KeyUUID(ns, "10") {
		t.Fatalf("a: want != off.KeyUUID(ns, \"10\"); ordered: %s %s (version %d)", a, b, a.Version())
	}
	if off.KeyUUID(ns, "9") != a {
		t.Fatal("ordered UUID not deterministic")
	}
	if got := off.KeyUUID(ns, "abc"); got != RowUUID(ns, "office", "abc") {
		t.Fatal("a non-integer id must fall back to v5")
	}
	if got := prof.KeyUUID(ns, "9"); got.Version() != 5 {
		t.Fatalf("want got.Version() == 5; v5 default: %s", got)
	} else if got != RowUUID(ns, "dispatch_user", "9") {
		t.Fatalf("got: want RowUUID(ns, \"dispatch_user\", \"9\"); v5 default: %s", got)
	}
}

// TestSourceGroups: sources are grouped by references between their entities (either way,
// transitively); groups and their members keep the given order.
func TestSourceGroups(t *testing.T) {
	sp, err := Parse([]byte(`name: g
sources:
  a: {driver: sqlite, path: /a.db}
  b: {driver: sqlite, path: /b.db}
  c: {driver: sqlite, path: /c.db}
  d: {driver: sqlite, path: /d.db}
entities:
  - {name: accounts, source: a, source_table: accounts, target_table: accounts, key: {source: id}, columns: [{source: name, type: text}]}
  - {name: emails, source: b, source_table: emails, target_table: emails, key: {source: id}, columns: [{source: subject, type: text}]}
  - {name: sessions, source: c, source_table: sessions, target_table: sessions, key: {source: id}, columns: [{source: account_id, references: accounts}]}
  - {name: audit, source: d, source_table: audit, target_table: audit, key: {source: id}, columns: [{source: note, type: text}], depends_on: [sessions]}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := sp.SourceGroups([]string{"a", "b", "c", "d"})
	want := [][]string{{"a", "c", "d"}, {"b"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("SourceGroups = %v, want %v", got, want)
	}
	if got := sp.SourceGroups([]string{"b", "d"}); fmt.Sprint(got) != "[[b] [d]]" {
		t.Fatalf("SourceGroups(b, d) = %v, want [[b] [d]] (d's dependency is in a source not drained)", got)
	}
}
