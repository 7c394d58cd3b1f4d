//go:build slow

package email_test

import (
	"testing"

	"github.com/cutover/cutover/internal/testing/testenv"
)

// TestMatrixDovecotToCyrusWorkerKilled is Dovecot → Cyrus with the worker a process of its
// own, SIGKILLed and restarted twice: while the initial sync's APPENDs stream (the destination
// slowed down, so some are in flight) and during the final verification. What an interrupted
// APPEND left on Cyrus was stored rewritten, so the retried pass must recognise it by the
// rewrite-tolerant key, not copy it again.
func TestMatrixDovecotToCyrusWorkerKilled(t *testing.T) {
	runMatrix(t, testenv.KindDovecot, testenv.KindCyrus, true)
}
