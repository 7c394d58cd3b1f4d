// Package packed carves many small values, and the interface boxes that hold them, from arrays
// shared by thousands: a page of rows is then a few allocations instead of one or two a value,
// which the allocator and the garbage collector charge for twice. A value keeps its array
// alive, so Values serves data let go of as a whole (a page read, transformed and written);
// texts longer than MaxText keep their own memory, so a value kept alone holds only small
// neighbours.
package packed

import (
	"strconv"
	"time"
	"unsafe"
)

// Values hands out values carved from its arrays; the zero value is ready. Not safe for
// concurrent use.
type Values struct {
	ints   []int64
	floats []float64
	uuids  [][16]byte
	times  []time.Time
	strs   []string // the headers an interface holding a string points at
	text   []byte
}

const (
	arrayValues = 2048     // values per array
	arrayText   = 32 << 10 // bytes per text array
	// MaxText is the longest text carved from a shared array; longer ones are allocated (and
	// boxed) on their own.
	MaxText = 256
)

// eface is the runtime's layout of an empty interface: its type and a pointer to its value
// (which the runtime otherwise allocates for a number, unless below 256, a string or a struct).
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

var (
	int64Type   = typeOf(int64(0))
	float64Type = typeOf(float64(0))
	uuidType    = typeOf([16]byte{})
	timeType    = typeOf(time.Time{})
	stringType  = typeOf("")
)

func typeOf(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

// boxed is an interface holding the value of type typ at data, without copying it: data must
// never change afterwards (interfaces hold immutable values).
func boxed(typ, data unsafe.Pointer) any {
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, data
	return v
}

func carve[T any](arr *[]T, v T) unsafe.Pointer {
	if len(*arr) == cap(*arr) {
		*arr = make([]T, 0, arrayValues)
	}
	*arr = append(*arr, v)
	return unsafe.Pointer(&(*arr)[len(*arr)-1])
}

// Int64 is v boxed.
func (a *Values) Int64(v int64) any {
	if v >= 0 && v < 256 {
		return v // the runtime boxes these without allocating
	}
	return boxed(int64Type, carve(&a.ints, v))
}

// Float64 is v boxed.
func (a *Values) Float64(v float64) any { return boxed(float64Type, carve(&a.floats, v)) }

// UUID is v boxed.
func (a *Values) UUID(v [16]byte) any { return boxed(uuidType, carve(&a.uuids, v)) }

// Time is v boxed.
func (a *Values) Time(v time.Time) any { return boxed(timeType, carve(&a.times, v)) }

// Text is a copy of b as a string.
func (a *Values) Text(b []byte) string {
	switch {
	case len(b) == 0:
		return ""
	case len(b) > MaxText:
		return string(b)
	}
	if len(a.text)+len(b) > cap(a.text) {
		a.text = make([]byte, 0, arrayText)
	}
	start := len(a.text)
	a.text = append(a.text, b...)
	return unsafe.String(&a.text[start], len(b))
}

// String is a copy of b as a string, boxed.
func (a *Values) String(b []byte) any {
	if len(b) == 0 || len(b) > MaxText {
		return string(b) // not in strs either: a short value kept must not keep the long ones
	}
	return boxed(stringType, carve(&a.strs, a.Text(b)))
}

// Decimal is n in decimal (strconv.FormatInt(n, 10)).
func (a *Values) Decimal(n int64) string {
	var buf [20]byte
	return a.Text(strconv.AppendInt(buf[:0], n, 10))
}
