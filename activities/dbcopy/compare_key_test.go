package dbcopy

import (
	"testing"

	"github.com/google/uuid"
)

// TestKeyOfMatchesLikeCanon: two keys match by keyOf exactly when their canonical texts are
// equal, whichever form each side holds a UUID in.
func TestKeyOfMatchesLikeCanon(t *testing.T) {
	u := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	other := uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
	cases := []struct {
		name string
		typ  string
		a, b any
	}{
		{"bytes and uuid.UUID", "uuid", [16]byte(u), u},
		{"bytes and lowercase text", "uuid", [16]byte(u), u.String()},
		{"bytes and uppercase text", "uuid", [16]byte(u), "6BA7B810-9DAD-11D1-80B4-00C04FD430C8"},
		{"different uuids", "uuid", [16]byte(u), other},
		{"braced text is not canonical", "uuid", [16]byte(u), "{" + u.String() + "}"},
		{"text without hyphens is not canonical", "uuid", u, "6ba7b8109dad11d180b400c04fd430c8"},
		{"nil and nil", "uuid", nil, nil},
		{"integers", "bigint", int64(42), int32(42)},
		{"integer and other integer", "bigint", int64(42), int64(43)},
		{"text", "text", "a", "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := canon(c.typ, c.a) == canon(c.typ, c.b)
			if got := keyOf(c.typ, c.a) == keyOf(c.typ, c.b); got != want {
				t.Fatalf("keyOf(%v) == keyOf(%v) is %v, canonical texts %q and %q say %v",
					c.a, c.b, got, canon(c.typ, c.a), canon(c.typ, c.b), want)
			}
		})
	}
}
