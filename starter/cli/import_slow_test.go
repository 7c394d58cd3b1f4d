//go:build slow

package cli_test

import "testing"

// TestImportCSVJobVerified500 is the whole domain of a 500-row CSV, from the refused bad row to
// the job verified against Dovecot (importToVerified). Built with the slow tag (make test-slow):
// it takes minutes on a two-core machine.
func TestImportCSVJobVerified500(t *testing.T) {
	importToVerified(t, 500)
}
