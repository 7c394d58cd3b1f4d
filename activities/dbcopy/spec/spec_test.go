package spec

import (
	"errors"
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
	if s.BatchSize != DefaultBatchSize || s.Target.Schema != "public" || s.Target.LedgerSchema != "cutover" {
		t.Fatalf("defaults not applied: %+v", s)
	}
	e, _ := s.Entity("offices")
	if e.Source != "legacy" || e.Key.Target != "id" || e.Key.Mode != KeyModeUUID || e.EntityType != "offices" {
		t.Fatalf("entity defaults: %+v", e)
	}
	if c := e.Columns[1]; c.Type != "boolean" || c.Default == nil || *c.Default != "0" {
		t.Fatalf("bool alias / yaml int default: %+v", c)
	}
	d, _ := s.Entity("doctors")
	if d.Columns[0].Type != "uuid" {
		t.Fatalf("reference column type = %q, want uuid", d.Columns[0].Type)
	}
	order, err := s.Order()
	if err != nil || strings.Join(order, ",") != "offices,profiles,doctors" {
		t.Fatalf("order = %v, %v", order, err)
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
	if s2.NamespaceUUID() != s.NamespaceUUID() || len(s2.Entities) != 3 {
		t.Fatal("JSON round trip changed the spec")
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
		{"unknown field", "version:", "batch_sizee: 3\nversion:", "field batch_sizee not found"},
		{"cycle", "key: {source: id}\n    columns:\n      - {source: name, type: text}",
			"key: {source: id}\n    depends_on: [doctors]\n    columns:\n      - {source: name, type: text}", "dependency cycle: offices → doctors → offices"},
		{"two values", "{target: full_name, expr:", "{target: full_name, source: x, expr:", "give exactly one of source, constant, expr"},
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
	if err != nil || strings.Join(order, ",") != "offices,patients,orders" {
		t.Fatalf("order = %v, %v", order, err)
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
		if got := e.Eval(row); got == nil || *got != tc.want {
			t.Errorf("%s = %v, want %q", tc.expr, got, tc.want)
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
	if a.Version() != 8 || a.Variant() != uuid.RFC4122 || a.String() >= b.String() || a == off.KeyUUID(ns, "10") {
		t.Fatalf("ordered: %s %s (version %d)", a, b, a.Version())
	}
	if off.KeyUUID(ns, "9") != a {
		t.Fatal("ordered UUID not deterministic")
	}
	if got := off.KeyUUID(ns, "abc"); got != RowUUID(ns, "office", "abc") {
		t.Fatal("a non-integer id must fall back to v5")
	}
	if got := prof.KeyUUID(ns, "9"); got.Version() != 5 || got != RowUUID(ns, "dispatch_user", "9") {
		t.Fatalf("v5 default: %s", got)
	}
}
