package source

import "unsafe"

// valueArena carves a page's numbers and short texts from arrays shared by many values: a
// page of 10,000 rows was five allocations a row (every INTEGER, REAL and TEXT boxed or copied
// on its own), whose allocation and garbage collection cost as much CPU as reading the rows
// from SQLite. A value keeps its array alive, hence only for a reader that lets go of a page as
// a whole (Query.Packed); texts longer than packedTextMax keep their own memory (and their own
// boxes), so a value kept alone never holds more than arrays of small ones.
type valueArena struct {
	ints   []int64
	floats []float64
	strs   []string // the headers an interface holding a string points at
	text   []byte
}

const (
	arenaValues   = 2048     // numbers per array
	arenaText     = 32 << 10 // bytes per text array
	packedTextMax = 256      // longer texts are allocated on their own
)

// eface is the runtime's layout of an empty interface: its type and a pointer to its value,
// which for a number the runtime boxes on the heap (unless below 256).
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

var (
	int64Type   = typeOf(int64(0))
	float64Type = typeOf(float64(0))
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

func (a *valueArena) int64(v int64) any {
	if v >= 0 && v < 256 {
		return v // the runtime boxes these without allocating
	}
	if len(a.ints) == cap(a.ints) {
		a.ints = make([]int64, 0, arenaValues)
	}
	a.ints = append(a.ints, v)
	return boxed(int64Type, unsafe.Pointer(&a.ints[len(a.ints)-1]))
}

func (a *valueArena) float64(v float64) any {
	if len(a.floats) == cap(a.floats) {
		a.floats = make([]float64, 0, arenaValues)
	}
	a.floats = append(a.floats, v)
	return boxed(float64Type, unsafe.Pointer(&a.floats[len(a.floats)-1]))
}

// string is b as a string (b is SQLite's memory, valid until the next step).
func (a *valueArena) string(b []byte) any {
	switch {
	case len(b) == 0:
		return ""
	case len(b) > packedTextMax:
		return string(b) // not in strs either: a short value kept must not keep the long ones
	}
	if len(a.text)+len(b) > cap(a.text) {
		a.text = make([]byte, 0, arenaText)
	}
	start := len(a.text)
	a.text = append(a.text, b...)
	s := unsafe.String(&a.text[start], len(b))
	if len(a.strs) == cap(a.strs) {
		a.strs = make([]string, 0, arenaValues)
	}
	a.strs = append(a.strs, s)
	return boxed(stringType, unsafe.Pointer(&a.strs[len(a.strs)-1]))
}
