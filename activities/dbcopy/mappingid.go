package dbcopy

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
	"time"
)

// mappingIDs makes the ids of mapping rows and blocks: UUIDv7s (Unix milliseconds first) whose
// 74 other bits are a counter shared by the engine's writers, then 10 random bits. Ids made by
// concurrent writers therefore rise together as their COPY streams are sent, so every insert
// into the primary key index lands at its right edge (PostgreSQL's fast path for the rightmost
// leaf). A per-batch base, as before, put the earlier of two concurrent batches to the left of
// the later one: a full descent and a mid-index split for each of its rows. Ids are unique
// within an engine by the counter, and across engines by the time, the counter's random start
// and the random tail.
type mappingIDs struct {
	seq  atomic.Uint64
	tail uint64 // 10 random bits
}

func newMappingIDs() *mappingIDs {
	var b [8]byte
	_, _ = rand.Read(b[:])
	g := &mappingIDs{tail: uint64(b[0])<<2 | uint64(b[1]&3)}
	g.seq.Store(binary.BigEndian.Uint64(b[:]) >> 2) // a random start far from wrapping
	return g
}

// next returns a new id.
func (g *mappingIDs) next() [16]byte {
	n := g.seq.Add(1)
	var u [16]byte
	ms := uint64(time.Now().UnixMilli())
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	randA := n >> 52                          // 12 bits
	randB := (n&(1<<52-1))<<10 | g.tail&0x3ff // 62 bits
	u[6] = 0x70 | byte(randA>>8)&0x0f         // version 7
	u[7] = byte(randA)
	binary.BigEndian.PutUint64(u[8:], randB)
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u
}
