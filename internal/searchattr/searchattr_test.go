package searchattr_test

import (
	"slices"
	"testing"

	"github.com/cutover/cutover/internal/searchattr"
)

func TestDevServerFlags(t *testing.T) {
	want := []string{
		"--search-attribute", "MigrationKind=Keyword",
		"--search-attribute", "MigrationPhase=Keyword",
		"--search-attribute", "MigrationGate=Keyword",
		"--search-attribute", "MigrationDomain=Keyword",
		"--search-attribute", "MigrationStatus=Keyword",
		"--search-attribute", "SyncPercent=Double",
		"--search-attribute", "TenantID=Int",
	}
	if got := searchattr.DevServerFlags(); !slices.Equal(got, want) {
		t.Errorf("DevServerFlags() =\n%q\nwant\n%q", got, want)
	}
}
