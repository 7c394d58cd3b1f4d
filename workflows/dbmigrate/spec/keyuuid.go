package spec

import (
	"crypto/sha1"
	"encoding/binary"
	"strconv"

	"github.com/google/uuid"
)

// KeyUUIDFunc returns KeyUUID(ns, ·) for this entity with its constant part worked out once:
// the copy engine calls it for every row and every reference, where uuid.NewSHA1 (a hasher and
// a name buffer per call) and OrderedUUID (a SHA-1 of the table per call) showed in profiles.
// The result equals KeyUUID for every id.
func (e *Entity) KeyUUIDFunc(ns uuid.UUID) func(id string) uuid.UUID {
	// UUIDv5: SHA-1 of namespace + table + "/" + id.
	prefix := make([]byte, 0, len(ns)+len(e.SourceTable)+1)
	prefix = append(append(append(prefix, ns[:]...), e.SourceTable...), '/')
	v5 := func(id string) uuid.UUID {
		var stack [128]byte
		name := stack[:0]
		if len(prefix)+len(id) > len(stack) {
			name = make([]byte, 0, len(prefix)+len(id))
		}
		name = append(append(name, prefix...), id...)
		sum := sha1.Sum(name)
		var u uuid.UUID
		copy(u[:], sum[:16])
		u[6] = u[6]&0x0f | 0x50 // version 5
		u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
		return u
	}
	if e.Key.UUID != UUIDOrdered {
		return v5
	}
	first := OrderedUUID(ns, e.SourceTable, 0)
	return func(id string) uuid.UUID {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil || n >= 1<<62 {
			return v5(id)
		}
		u := first
		u[8] = byte(n>>56)&0x3f | 0x80
		u[9], u[10], u[11] = byte(n>>48), byte(n>>40), byte(n>>32)
		u[12], u[13], u[14], u[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		return u
	}
}

// NamespaceUUID is the UUIDv5 namespace of the spec's row ids.
func (s *Spec) NamespaceUUID() uuid.UUID {
	ns, err := uuid.Parse(s.Namespace)
	if err != nil {
		return uuid.NewSHA1(uuid.NameSpaceURL, []byte("cutover:spec:"+s.Name))
	}
	return ns
}

// RowUUID is the UUIDv5 a legacy row becomes: UUIDv5(namespace, table + "/" + id).
func RowUUID(ns uuid.UUID, sourceTable, id string) uuid.UUID {
	return uuid.NewSHA1(ns, []byte(sourceTable+"/"+id))
}

// KeyUUID is the UUID a legacy id of this entity becomes (see Key.UUID).
func (e *Entity) KeyUUID(ns uuid.UUID, id string) uuid.UUID {
	if e.Key.UUID == UUIDOrdered {
		if n, err := strconv.ParseUint(id, 10, 64); err == nil && n < 1<<62 {
			return OrderedUUID(ns, e.SourceTable, n)
		}
	}
	return RowUUID(ns, e.SourceTable, id)
}

// OrderedUUID is a version 8 UUID: 6 bytes of UUIDv5(namespace, table) then the id in the
// last 62 bits, so one table's UUIDs sort like its ids.
func OrderedUUID(ns uuid.UUID, sourceTable string, id uint64) uuid.UUID {
	prefix := uuid.NewSHA1(ns, []byte(sourceTable))
	var u uuid.UUID
	copy(u[:6], prefix[:6])
	u[6] = 0x80 // version 8
	binary.BigEndian.PutUint64(u[8:], id)
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant; ids are below 2^62
	return u
}
