package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
)

// A wait outlives a worker stopped mid-query or a server restart, and ends at once on an
// error no later poll can change.
func TestWaitPollsThroughTransientErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		errs    []error // what the first polls return; then the value 3
		want    int
		wantErr bool
		polls   int
	}{
		{"worker gone mid-query", []error{serviceerror.NewCanceled("stream terminated by RST_STREAM with error code: CANCEL"),
			serviceerror.NewUnavailable("connection refused")}, 3, false, 3},
		{"server busy", []error{serviceerror.NewResourceExhausted(0, "busy"), serviceerror.NewDeadlineExceeded("slow")}, 3, false, 3},
		{"no such workflow", []error{serviceerror.NewNotFound("workflow not found")}, 0, true, 1},
		{"bad argument", []error{serviceerror.NewInvalidArgument("bad id")}, 0, true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			polls := 0
			v, err := wait(ctx, time.Millisecond, func(context.Context) (int, error) {
				polls++
				if polls <= len(c.errs) {
					return 0, c.errs[polls-1]
				}
				return 3, nil
			}, func(v int) bool { return v == 3 })
			if (err != nil) != c.wantErr {
				t.Errorf("(err != nil) = %v, want %v (c.wantErr); got %d, %v after %d polls; want %d, error %v after %d",
					(err != nil), c.wantErr, v, err, polls, c.want, c.wantErr, c.polls)
			} else if v != c.want {
				t.Errorf("v: want c.want; got %d, %v after %d polls; want %d, error %v after %d",
					v, err, polls, c.want, c.wantErr, c.polls)
			} else if polls != c.polls {
				t.Errorf("polls: want c.polls; got %d, %v after %d polls; want %d, error %v after %d",
					v, err, polls, c.want, c.wantErr, c.polls)
			}
			if c.wantErr && !errors.Is(err, c.errs[0]) {
				t.Errorf("error %v, want the poll's own %v", err, c.errs[0])
			}
		})
	}
}
