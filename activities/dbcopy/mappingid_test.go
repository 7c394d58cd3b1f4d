package dbcopy

import (
	"bytes"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// TestMappingIDsRiseAcrossWriters: ids drawn by concurrent writers are valid UUIDv7s, all
// distinct, and each one is greater than every id drawn before it started.
func TestMappingIDsRiseAcrossWriters(t *testing.T) {
	g := newMappingIDs()
	const writers, each = 4, 20000
	var mu sync.Mutex
	var last [16]byte // the greatest id any writer has finished drawing
	seen := make(map[[16]byte]bool, writers*each)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				mu.Lock()
				floor := last
				id := g.next()
				if bytes.Compare(id[:], floor[:]) <= 0 {
					mu.Unlock()
					t.Errorf("id %x not above %x", id, floor)
					return
				}
				if seen[id] {
					mu.Unlock()
					t.Errorf("id %x drawn twice", id)
					return
				}
				seen[id] = true
				last = id
				mu.Unlock()
				if u := uuid.UUID(id); u.Version() != 7 {
					t.Errorf("%s: version %d, want 7", u, u.Version())
					return
				} else if u.Variant() != uuid.RFC4122 {
					t.Errorf("%s: variant %v, want %v", u, u.Variant(), uuid.RFC4122)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != writers*each {
		t.Fatalf("%d ids", len(seen))
	}
	// Two engines in the same millisecond still differ.
	a, b := newMappingIDs().next(), newMappingIDs().next()
	if a == b {
		t.Fatal("two engines made the same id")
	}
}
