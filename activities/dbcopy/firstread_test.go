package dbcopy

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/cutover/cutover/workflows/dbmigrate/dbmigrateapi"
	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestUniqueValueFirstReadWins: two rows of one batch hold the same value of a unique column,
// and the row read later comes first in COPY order (its UUID key sorts first). The row read
// first loads and the later one is quarantined as the unique violation, whichever of the two
// PostgreSQL refuses in the batch's COPY.
func TestUniqueValueFirstReadWins(t *testing.T) {
	const n = 200
	sp, err := spec.Parse([]byte(uniquePeopleSpec("unused.db", n)))
	if err != nil {
		t.Fatal(err)
	}
	ent, _ := sp.Entity("people")
	key := ent.KeyUUIDFunc(sp.NamespaceUUID())
	first := key("1")
	later := 0 // a row read after row 1 whose UUID sorts before row 1's
	for id := 2; id <= n && later == 0; id++ {
		if u := key(strconv.Itoa(id)); bytes.Compare(u[:], first[:]) < 0 {
			later = id
		}
	}
	if later == 0 {
		t.Fatalf("no id up to %d has a UUID below row 1's", n)
	}
	e := openPeople(t, peopleDB(t, n, map[int]int{later: 1}), n, 1)
	res, err := e.CopyBatches(ctxT(t), dbmigrateapi.BatchRequest{Entity: "people"}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Loaded != n-1 {
		t.Fatalf("res.Loaded = %d, want %d", res.Loaded, n-1)
	}
	if got := count(t, e, `SELECT count(*) FROM public.people WHERE legacy_id = 1`); got != 1 {
		t.Errorf("row 1 (read first) loaded %d times, want 1", got)
	}
	if got := count(t, e, `SELECT count(*) FROM public.people WHERE legacy_id = $1`, later); got != 0 {
		t.Errorf("row %d (read later, same email) loaded %d times, want 0", later, got)
	}
	if codes := fmtCodes(errorCodes(t, e, "people")); codes != "23505=1" {
		t.Fatalf("errors %s, want 23505=1", codes)
	}
}
