package spec

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestKeyUUIDFuncMatchesKeyUUID: the precomputed form gives the same UUID as KeyUUID for
// integer, text, long, huge and odd ids in both modes.
func TestKeyUUIDFuncMatchesKeyUUID(t *testing.T) {
	ns := uuid.NewSHA1(uuid.NameSpaceURL, []byte("cutover:spec:t"))
	ids := []string{"0", "1", "9", "10", "4611686018427387903", "4611686018427387904", "18446744073709551615",
		"18446744073709551616", "-1", "+5", "007", "", "abc", "ünï", strings.Repeat("k", 200)}
	for i := 0; i < 2000; i++ {
		ids = append(ids, strconv.Itoa(i*7919))
	}
	for _, mode := range []string{UUIDv5, UUIDOrdered} {
		for _, table := range []string{"office", strings.Repeat("t", 120)} {
			e := &Entity{SourceTable: table, Key: Key{UUID: mode}}
			f := e.KeyUUIDFunc(ns)
			for _, id := range ids {
				if got, want := f(id), e.KeyUUID(ns, id); got != want {
					t.Fatalf("%s/%s id %q: %s, KeyUUID says %s", mode, table[:5], id, got, want)
				}
			}
		}
	}
}

func BenchmarkKeyUUID(b *testing.B) {
	ns := uuid.NewSHA1(uuid.NameSpaceURL, []byte("cutover:spec:t"))
	for _, mode := range []string{UUIDv5, UUIDOrdered} {
		e := &Entity{SourceTable: "users", Key: Key{UUID: mode}}
		b.Run(mode+"/KeyUUID", func(b *testing.B) {
			for i := range b.N {
				_ = e.KeyUUID(ns, strconv.Itoa(i))
			}
		})
		f := e.KeyUUIDFunc(ns)
		b.Run(mode+"/KeyUUIDFunc", func(b *testing.B) {
			for i := range b.N {
				_ = f(strconv.Itoa(i))
			}
		})
	}
}
