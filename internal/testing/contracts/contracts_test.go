package contracts

import (
	"context"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type tagged struct {
	ID    int64     `json:"id"`
	Inner *untagged `json:"inner"`
}

type untagged struct {
	Name string
}

type acts struct{}

func (acts) Good(context.Context, tagged) error                  { return nil }
func (acts) Result(context.Context) (map[string]untagged, error) { return nil, nil }
func (acts) Skipped(context.Context, untagged) error             { return nil }

func TestProblemsNamesEveryUntaggedField(t *testing.T) {
	got, walked := Problems(reflect.TypeFor[acts](), func(m string) bool { return m != "Skipped" })
	want := []string{
		"Good input.Inner: contracts.untagged.Name has no JSON name",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if walked != 2 {
		t.Errorf("walked %d methods, want 2", walked)
	}
}
