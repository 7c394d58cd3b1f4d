// Package contracts checks that activity payloads are contracts: every exported struct field
// of an input or result carries a JSON name (what recorded histories hold), and no type is a
// ledger row of activities/store (rows are mapped to payloads inside the activities).
package contracts

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Problems walks the inputs and results of the methods of activities (a pointer to an
// activity struct) that keep selects, and returns what is not a contract, sorted, and how many
// methods it walked.
func Problems(activities reflect.Type, keep func(method string) bool) (problems []string, walked int) {
	w := walker{seen: map[reflect.Type]bool{}}
	ctxType := reflect.TypeFor[context.Context]()
	errType := reflect.TypeFor[error]()
	for i := range activities.NumMethod() {
		m := activities.Method(i)
		if !keep(m.Name) {
			continue
		}
		walked++
		mt := m.Type // receiver first
		for j := 1; j < mt.NumIn(); j++ {
			if mt.In(j) != ctxType {
				w.walk(mt.In(j), m.Name+" input")
			}
		}
		for j := range mt.NumOut() {
			if mt.Out(j) != errType {
				w.walk(mt.Out(j), m.Name+" result")
			}
		}
	}
	sort.Strings(w.problems)
	return w.problems, walked
}

type walker struct {
	seen     map[reflect.Type]bool
	problems []string
}

func (w *walker) walk(t reflect.Type, where string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		if t.Kind() == reflect.Map {
			w.walk(t.Key(), where+" key")
		}
		t = t.Elem()
	}
	if w.seen[t] {
		return
	}
	w.seen[t] = true
	if strings.HasSuffix(t.PkgPath(), "/activities/store") {
		w.problems = append(w.problems, where+": "+t.String()+" is a ledger row")
		return
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == "" && !f.Anonymous {
			w.problems = append(w.problems, where+": "+t.String()+"."+f.Name+" has no JSON name")
		}
		w.walk(f.Type, where+"."+f.Name)
	}
}
