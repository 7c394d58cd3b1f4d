// Package dbcopytest generates legacy databases for the copy engine's tests, benchmarks and the
// workflow end-to-end tests: a clinic's chain of tables (offices → profiles → doctors → patients →
// orders; products, comments, jaws, projects, treatment plans) with planted bad rows whose fate is
// known in advance, in SQLite or PostgreSQL.
package dbcopytest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // registers "sqlite"
)

// Table is a generated legacy table.
type Table struct {
	Name    string
	Columns []string
	Types   []string // SQLite declared types; PostgreSQL gets the closest equivalent
	PK      bool     // declare the first column PRIMARY KEY
	Rows    [][]any
}

// Expect is what a correct migration of one entity yields.
type Expect struct {
	Entity string
	Source int            // rows in the source table
	Loaded int            // rows that must arrive
	Codes  map[string]int // error_code → count of rows quarantined with it (QuarantinedRowsSQL)
}

// QuarantinedRowsSQL sums migration_errors rows as source rows: one error of code
// duplicate_key carries every row of its key (context duplicate_rows).
const QuarantinedRowsSQL = `sum(coalesce((context->>'duplicate_rows')::int, 1))`

// Failed is the number of quarantined rows.
func (x Expect) Failed() int {
	n := 0
	for _, c := range x.Codes {
		n += c
	}
	return n
}

// Clinic is a generated clinic database.
type Clinic struct {
	Tables  []*Table
	Expects map[string]*Expect // by entity name
}

// Entities lists the clinic entities in spec order.
var Entities = []string{"offices", "profiles", "doctors", "patients", "orders", "products", "comments", "jaws", "projects", "treatment_plans"}

var timeFormats = []func(sec int64) any{
	func(s int64) any { return unix(s).Format("2006-01-02 15:04:05") },
	func(s int64) any { return unix(s).Format("2006-01-02T15:04:05Z") },
	func(s int64) any { return unix(s).Format("2006-01-02T15:04:05.000-07:00") },
	func(s int64) any { return s },
	func(s int64) any { return unix(s).Format("2006/01/02 15:04:05") },
}

// NewClinic generates the clinic at scale (1 ≈ 3,100 rows; 65 ≈ 200K). forPostgres drops the
// rows PostgreSQL cannot hold in a text column (invalid UTF-8), so expectations stay exact.
func NewClinic(scale int, forPostgres bool) *Clinic {
	r := rand.New(rand.NewPCG(42, uint64(scale)))
	c := &Clinic{Expects: map[string]*Expect{}}
	expect := func(entity string, src, loaded int, codes map[string]int) {
		c.Expects[entity] = &Expect{Entity: entity, Source: src, Loaded: loaded, Codes: codes}
	}
	n := func(k int) int { return max(k*scale, 20) }
	base := int64(1704067200) // 2024-01-01
	ts := func(id int) any { return timeFormats[id%len(timeFormats)](base + int64(id)*3607) }
	goodIDs := func(count int, bad ...int) []int {
		var ids []int
		for i := 1; i <= count; i++ {
			if !slices.Contains(bad, i) {
				ids = append(ids, i)
			}
		}
		return ids
	}
	pick := func(ids []int) int { return ids[r.IntN(len(ids))] }

	// offices: id 3 has active = 'maybe'.
	nOff := max(scale*10, 5)
	offices := &Table{Name: "office", PK: true, Columns: []string{"id", "name", "city", "active", "created_at"},
		Types: []string{"INTEGER", "TEXT", "TEXT", "INTEGER", "TEXT"}}
	for i := 1; i <= nOff; i++ {
		var active any = int64(i % 2)
		if i == 3 {
			active = "maybe"
		}
		offices.Rows = append(offices.Rows, []any{int64(i), fmt.Sprintf("Office %d", i), cities[i%len(cities)], active, ts(i)})
	}
	expect("offices", nOff, nOff-1, map[string]int{"bad_boolean": 1})
	goodOff := goodIDs(nOff, 3)

	// profiles (dispatch_user): 2 NULL email (NOT NULL), 4 duplicate email, 6 invalid UTF-8,
	// 8 unparseable timestamp, 10 invalid JSON.
	nProf := n(1000)
	profiles := &Table{Name: "dispatch_user", PK: true,
		Columns: []string{"id", "email", "first_name", "last_name", "is_staff", "metadata", "legacy_flag", "created_at", "updated_at"},
		Types:   []string{"INTEGER", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "INTEGER", "DATETIME", "TEXT"}}
	staff := []string{"t", "f", "1", "0", "yes", "no", "true", "false"}
	for i := 1; i <= nProf; i++ {
		var email any = fmt.Sprintf("user%d@clinic.example", i)
		first := firstNames[i%len(firstNames)]
		var created any = ts(i)
		meta := fmt.Sprintf(`{"plan": "p%d", "score": %d, "tags": ["a", "b"]}`, i%7, i%100)
		switch i {
		case 2:
			email = nil
		case 4:
			email = "user1@clinic.example"
		case 6:
			if !forPostgres {
				first = "Jos\xe9" // Latin-1, not UTF-8
			}
		case 8:
			created = "yesterday"
		case 10:
			meta = `{bad`
		}
		profiles.Rows = append(profiles.Rows, []any{int64(i), email, first, lastNames[i%len(lastNames)],
			staff[i%len(staff)], meta, int64(i % 3), created, unix(base + int64(i)*60).Format("2006-01-02 15:04:05")})
	}
	badProf := []int{2, 4, 8, 10}
	codes := map[string]int{"23502": 1, "23505": 1, "bad_timestamp": 1, "bad_json": 1}
	if !forPostgres {
		badProf = append(badProf, 6)
		codes["invalid_utf8"] = 1
	}
	expect("profiles", nProf, nProf-len(badProf), codes)
	goodProf := goodIDs(nProf, badProf...)

	// doctors: 1 orphan office, 2 references the NULL-email profile (a failed parent).
	nDoc := n(50)
	doctors := &Table{Name: "doctor", PK: true, Columns: []string{"id", "office_id", "profile_id", "specialty", "rating"},
		Types: []string{"INTEGER", "INTEGER", "INTEGER", "TEXT", "REAL"}}
	for i := 1; i <= nDoc; i++ {
		off, prof := int64(pick(goodOff)), int64(pick(goodProf))
		switch i {
		case 1:
			off = 999999
		case 2:
			prof = 2
		}
		doctors.Rows = append(doctors.Rows, []any{int64(i), off, prof, specialties[i%len(specialties)], float64(i%50) / 10})
	}
	expect("doctors", nDoc, nDoc-2, map[string]int{"orphan_fk": 2})
	goodDoc := goodIDs(nDoc, 1, 2)

	// patients: 5 orphan doctor, 7 impossible birth date.
	nPat := n(400)
	patients := &Table{Name: "patient", PK: true, Columns: []string{"id", "doctor_id", "profile_id", "name", "birth_date"},
		Types: []string{"INTEGER", "INTEGER", "INTEGER", "TEXT", "TEXT"}}
	for i := 1; i <= nPat; i++ {
		doc := int64(pick(goodDoc))
		var prof any = int64(pick(goodProf))
		if i%5 == 0 {
			prof = nil // optional reference
		}
		birth := unix(base - int64(i%20000)*86400).Format("2006-01-02")
		switch i {
		case 5:
			doc = 888888
		case 7:
			birth = "31/02/2020"
		}
		patients.Rows = append(patients.Rows, []any{int64(i), doc, prof, fmt.Sprintf("%s %s", firstNames[i%len(firstNames)], lastNames[(i/3)%len(lastNames)]), birth})
	}
	expect("patients", nPat, nPat-2, map[string]int{"orphan_fk": 1, "bad_timestamp": 1})
	goodPat := goodIDs(nPat, 5, 7)

	// orders: 9 'NaN' amount, 11 NULL status (NOT NULL), 13 references the orphaned patient 5.
	nOrd := n(800)
	orders := &Table{Name: "orders", PK: true, Columns: []string{"id", "patient_id", "amount", "status", "created_at"},
		Types: []string{"INTEGER", "INTEGER", "REAL", "TEXT", "TEXT"}}
	statuses := []string{"new", "paid", "shipped", "cancelled"}
	for i := 1; i <= nOrd; i++ {
		pat := int64(pick(goodPat))
		var amount any = float64(i%1000) + 0.25
		var status any = statuses[i%len(statuses)]
		switch i {
		case 9:
			amount = "NaN"
		case 11:
			status = nil
		case 13:
			pat = 5
		}
		orders.Rows = append(orders.Rows, []any{int64(i), pat, amount, status, ts(i)})
	}
	expect("orders", nOrd, nOrd-3, map[string]int{"nan": 1, "23502": 1, "orphan_fk": 1})
	goodOrd := goodIDs(nOrd, 9, 11, 13)

	// products: no primary key in the legacy table; id 7 appears twice (both rows quarantined as
	// duplicate_key: which one is right is the operator's call), 12 has price 'abc'.
	nProd := n(100)
	products := &Table{Name: "product", Columns: []string{"id", "sku", "price"}, Types: []string{"INTEGER", "TEXT", "TEXT"}}
	for i := 1; i <= nProd; i++ {
		var price any = fmt.Sprintf("%d.%02d", i%500, i%100)
		if i == 12 {
			price = "abc"
		}
		products.Rows = append(products.Rows, []any{int64(i), fmt.Sprintf("SKU-%05d", i), price})
		if i == 7 {
			products.Rows = append(products.Rows, []any{int64(7), "SKU-00007-dup", "9.99"})
		}
	}
	expect("products", nProd+1, nProd-2, map[string]int{"duplicate_key": 2, "bad_numeric": 1})

	// comments: 3 orphan author.
	nCom := n(300)
	comments := &Table{Name: "dispatch_comment", PK: true, Columns: []string{"id", "author_id", "body", "created_at"},
		Types: []string{"INTEGER", "INTEGER", "TEXT", "TEXT"}}
	for i := 1; i <= nCom; i++ {
		author := int64(pick(goodProf))
		if i == 3 {
			author = 777777
		}
		comments.Rows = append(comments.Rows, []any{int64(i), author, strings.Repeat("note ", 1+i%20) + fmt.Sprint(i), ts(i)})
	}
	expect("comments", nCom, nCom-1, map[string]int{"orphan_fk": 1})

	// jaws: 2 references the NaN order (a failed parent).
	nJaw := n(200)
	jaws := &Table{Name: "jaw", PK: true, Columns: []string{"id", "patient_id", "order_id", "side"},
		Types: []string{"INTEGER", "INTEGER", "INTEGER", "TEXT"}}
	for i := 1; i <= nJaw; i++ {
		ord := int64(pick(goodOrd))
		if i == 2 {
			ord = 9
		}
		jaws.Rows = append(jaws.Rows, []any{int64(i), int64(pick(goodPat)), ord, []string{"upper", "lower"}[i%2]})
	}
	expect("jaws", nJaw, nJaw-1, map[string]int{"orphan_fk": 1})

	// projects: 2 invalid JSON settings.
	nProj := n(20)
	projects := &Table{Name: "project", PK: true, Columns: []string{"id", "name", "settings"}, Types: []string{"INTEGER", "TEXT", "TEXT"}}
	for i := 1; i <= nProj; i++ {
		settings := fmt.Sprintf(`{"color": "c%d", "budget": %d.5}`, i%9, i*100)
		if i == 2 {
			settings = `{"color": }`
		}
		projects.Rows = append(projects.Rows, []any{int64(i), fmt.Sprintf("Project %d", i), settings})
	}
	expect("projects", nProj, nProj-1, map[string]int{"bad_json": 1})

	// treatment plans: 4 approved = 2 (not a boolean).
	nPlan := n(200)
	plans := &Table{Name: "treatment_plan", PK: true, Columns: []string{"id", "patient_id", "plan", "approved"},
		Types: []string{"INTEGER", "INTEGER", "TEXT", "INTEGER"}}
	for i := 1; i <= nPlan; i++ {
		var approved any = int64(i % 2)
		if i == 4 {
			approved = int64(2)
		}
		plans.Rows = append(plans.Rows, []any{int64(i), int64(pick(goodPat)), fmt.Sprintf(`{"steps": %d, "aligners": true}`, 1+i%30), approved})
	}
	expect("treatment_plans", nPlan, nPlan-1, map[string]int{"bad_boolean": 1})

	c.Tables = []*Table{offices, profiles, doctors, patients, orders, products, comments, jaws, projects, plans}
	return c
}

// Rows is the total number of source rows.
func (c *Clinic) Rows() int {
	n := 0
	for _, t := range c.Tables {
		n += len(t.Rows)
	}
	return n
}

var (
	cities      = []string{"Lyon", "Oslo", "Porto", "Graz", "Turku", "Ghent"}
	firstNames  = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"}
	lastNames   = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"}
	specialties = []string{"orthodontics", "surgery", "general"}
)

// WriteSQLite writes the tables into a new SQLite file at path.
func WriteSQLite(ctx context.Context, path string, tables []*Table) error {
	_ = os.Remove(path)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=synchronous(off)")
	if err != nil {
		return err
	}
	defer db.Close()
	for _, t := range tables {
		if err := AppendSQLite(ctx, db, t, true); err != nil {
			return err
		}
	}
	return nil
}

// AppendSQLite inserts a table's rows (creating the table first when create is set).
func AppendSQLite(ctx context.Context, db *sql.DB, t *Table, create bool) error {
	if create {
		defs := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			defs[i] = c + " " + t.Types[i]
			if i == 0 && t.PK {
				defs[i] += " PRIMARY KEY"
			}
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", t.Name, strings.Join(defs, ", "))); err != nil {
			return fmt.Errorf("create %s: %w", t.Name, err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ph := strings.TrimSuffix(strings.Repeat("?, ", len(t.Columns)), ", ")
	st, err := tx.PrepareContext(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", t.Name, strings.Join(t.Columns, ", "), ph))
	if err != nil {
		return err
	}
	for _, r := range t.Rows {
		if _, err := st.ExecContext(ctx, r...); err != nil {
			return fmt.Errorf("insert into %s: %w", t.Name, err)
		}
	}
	return tx.Commit()
}

// pgType is a column's type in the legacy PostgreSQL schema: bigint where every value is an
// integer, text otherwise (legacy schemas keep mixed data in text).
func pgType(t *Table, col int) string {
	for _, r := range t.Rows {
		if _, ok := r[col].(int64); !ok && r[col] != nil {
			return "text"
		}
	}
	return "bigint"
}

// WritePostgres creates the tables in a PostgreSQL database and loads them with COPY.
func WritePostgres(ctx context.Context, url string, tables []*Table) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, t := range tables {
		defs := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			defs[i] = c + " " + pgType(t, i)
			if i == 0 && t.PK {
				defs[i] += " PRIMARY KEY"
			}
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", t.Name, strings.Join(defs, ", "))); err != nil {
			return fmt.Errorf("create %s: %w", t.Name, err)
		}
		types := make([]string, len(t.Columns))
		for i := range types {
			types[i] = pgType(t, i)
		}
		rows := make([][]any, len(t.Rows))
		for i, r := range t.Rows {
			rows[i] = make([]any, len(r))
			for j, v := range r {
				if v != nil && types[j] == "text" {
					v = fmt.Sprint(v)
				}
				rows[i][j] = v
			}
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{t.Name}, t.Columns, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy %s: %w", t.Name, err)
		}
	}
	return nil
}
