package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/cutover/cutover/examples/mailsystem"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestSpecNamesThisGenerator: the command the example spec tells a new user to run is this
// one, and it writes the two databases the spec reads, with the rows it says.
func TestSpecNamesThisGenerator(t *testing.T) {
	raw, err := os.ReadFile(mailsystem.SpecPath())
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("`go run (\\./[^` ]+)").FindSubmatch(raw)
	if m == nil {
		t.Fatalf("m is nil; the spec names generator %q, want ./examples/mailsystem/gen", m)
	}
	if string(m[1]) != "./examples/mailsystem/gen" {
		t.Fatalf("string(m[1]) = %v, want \"./examples/mailsystem/gen\"; the spec names generator %q, want ./examples/mailsystem/gen",
			string(m[1]), m)
	}
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-dir", dir, "-accounts", "20", "-emails", "200"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "20 accounts") {
		t.Errorf("output %q", out.String())
	}
	sp, err := spec.Load(mailsystem.SpecPath())
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range sp.Sources {
		path := filepath.Join(dir, filepath.Base(src.Path))
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range sp.Entities {
			if ent.Source != name {
				continue
			}
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM "` + ent.SourceTable + `"`).Scan(&n); err != nil {
				t.Errorf("err: want nil; %s: table %s of source %s: %d rows (%v)", path, ent.SourceTable, name, n, err)
			} else if n == 0 {
				t.Errorf("n: want != 0; %s: table %s of source %s: %d rows (%v)", path, ent.SourceTable, name, n, err)
			}
		}
		db.Close()
	}
}
