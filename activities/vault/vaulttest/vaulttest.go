// Package vaulttest gives tests a vault with a fresh key over a test store.
package vaulttest

import (
	"testing"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
)

// New returns a vault over st under a newly generated key, and that key (in the
// form of vault.EnvKeys) for tests whose worker reads it from the environment.
func New(t testing.TB, st *store.Store) (*vault.Vault, string) {
	t.Helper()
	key, err := vault.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := vault.ParseKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(st, keys)
	if err != nil {
		t.Fatal(err)
	}
	return v, key
}
