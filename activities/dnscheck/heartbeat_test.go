package dnscheck

import (
	"errors"
	"net"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cutover/cutover/internal/testing/testenv"
)

// TestLookupKeepsAHeartbeat: a resolver that never answers holds a lookup for its query
// timeout; the lookup heartbeats meanwhile, so it ends with its own error (DNSLookup), not a
// heartbeat timeout, and a workflow can give it a heartbeat timeout of seconds: a worker
// killed inside it holds the job that long, not the one-minute timeout.
func TestLookupKeepsAHeartbeat(t *testing.T) {
	t.Parallel()
	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // reads queries, answers none
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	a := &Activities{Server: silent.LocalAddr().String(), Timeout: 1500 * time.Millisecond}
	err = testenv.RunWithHeartbeatTimeout(t, a, a.CheckDNS, 400*time.Millisecond, Request{Domain: "example.com"})
	if temporal.IsTimeoutError(err) {
		t.Fatalf("the lookup went silent for its heartbeat timeout: %v", err)
	}
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != ErrTypeLookup {
		t.Fatalf("lookup at a silent resolver: %v, want a %s error", err, ErrTypeLookup)
	}
}
