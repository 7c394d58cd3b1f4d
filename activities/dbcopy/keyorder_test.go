package dbcopy

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cutover/cutover/workflows/dbmigrate/spec"
)

// TestKeyOrder: rows are COPYed in their UUID keys' byte order, rows of one key in read order,
// whichever subset of the batch is written.
func TestKeyOrder(t *testing.T) {
	p := &entityPlan{ent: &spec.Entity{Key: spec.Key{Mode: spec.KeyModeUUID}}}
	r := rand.New(rand.NewPCG(1, 2))
	rows := make([]prepared, 5000)
	for i := range rows {
		rows[i].uuid[0], rows[i].uuid[1], rows[i].uuid[2] = 0x5a, 0x5a, 0x5a // bytes every key shares
		for j := 3; j < 16; j++ {
			rows[i].uuid[j] = byte(r.IntN(3)) // few distinct bytes: ties, and halves that tie
		}
		if i%7 == 0 {
			rows[i].uuid = rows[i/2].uuid
		}
	}
	for _, idx := range [][]int32{indexes(0, 5000), indexes(100, 200), indexes(10, 10)} {
		want := slices.Clone(idx)
		slices.SortStableFunc(want, func(a, b int32) int { return bytes.Compare(rows[a].uuid[:], rows[b].uuid[:]) })
		if got := keyOrder(p, rows, idx); !slices.Equal(got, want) {
			t.Errorf("keyOrder of rows %d..%d differs from the keys' byte order", idx[0], idx[len(idx)-1])
		}
		if got := keyOrder(p, rows, want); !slices.Equal(got, want) {
			t.Errorf("keyOrder of sorted rows %d..%d is not their order", idx[0], idx[len(idx)-1])
		}
	}
}

func indexes(from, to int32) []int32 {
	var out []int32
	for i := from; i <= to && i < 5000; i++ {
		out = append(out, i)
	}
	return out
}
