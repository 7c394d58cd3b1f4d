package taskqueue

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePools(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []Pool
		wantErr bool
	}{
		{in: "", want: All},
		{in: "all", want: All},
		{in: "mail", want: []Pool{Mail}},
		{in: " db , workflows ", want: []Pool{Workflows, DB}},
		{in: "mail,mail", want: []Pool{Mail}},
		{in: "imap", wantErr: true},
		{in: "mail,", wantErr: true},
	} {
		got, err := ParsePools(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParsePools(%q): error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParsePools(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestName(t *testing.T) {
	for p, want := range map[Pool]string{Workflows: "cutover", Mail: "cutover-mail", DB: "cutover-db"} {
		if got := Name("cutover", p); got != want {
			t.Errorf("Name(cutover, %s) = %q, want %q", p, got, want)
		}
	}
}
