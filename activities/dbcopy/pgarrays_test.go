package dbcopy

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// TestArrayParameters: a batch's arrays encode as the slices they wrap do, without an
// allocation an element.
func TestArrayParameters(t *testing.T) {
	m := pgtype.NewMap()
	us, ks := make([]pgtype.UUID, 1000), make([]string, 1000)
	for i := range us {
		us[i] = pgtype.UUID{Bytes: [16]byte{byte(i), byte(i >> 8), 15: 1}, Valid: true}
		ks[i] = string(rune('a'+i%26)) + "é"
	}
	ks[3] = ""
	for _, c := range []struct {
		name        string
		oid         uint32
		plain, fast any
	}{{"uuid[]", pgtype.UUIDArrayOID, us, uuidArray(us)}, {"text[]", pgtype.TextArrayOID, ks, textArray(ks)}} {
		want, err := m.Encode(c.oid, pgtype.BinaryFormatCode, c.plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Encode(c.oid, pgtype.BinaryFormatCode, c.fast, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s encodes as %x…, want %x…", c.name, got[:min(len(got), 40)], want[:min(len(want), 40)])
		}
		buf := make([]byte, 0, 2*len(want))
		if allocs := testing.AllocsPerRun(3, func() { _, _ = m.Encode(c.oid, pgtype.BinaryFormatCode, c.fast, buf[:0]) }); allocs > 4 {
			t.Errorf("%s of 1,000 elements: %.0f allocations, want at most 4", c.name, allocs)
		}
	}
}
