package dbcopy

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/testing/contracts"
)

// TestActivityPayloadsAreContracts: the input and result types of every activity a workflow
// calls (the DB* methods of Activities) are contracts — JSON-named fields, no ledger rows.
func TestActivityPayloadsAreContracts(t *testing.T) {
	problems, n := contracts.Problems(reflect.TypeFor[*Activities](), func(m string) bool {
		return strings.HasPrefix(m, "DB")
	})
	if n == 0 {
		t.Fatal("no DB* activities found on *Activities")
	}
	for _, p := range problems {
		t.Error(p)
	}
}
