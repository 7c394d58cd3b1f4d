package cli

import (
	"context"
	"encoding/csv"
	"errors"

	"github.com/cutover/cutover/activities/onboard"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
)

// runVaultPutBatch stores every secret of a CSV on stdin in one transaction (all or none) and
// prints name,credentials_ref for each (JSON with --output json).
func runVaultPutBatch(ctx context.Context, e *Env, out *output, refOnly bool) error {
	secrets, err := onboard.ParseSecretsCSV(e.Stdin, "stdin")
	var ce *onboard.CSVError
	if errors.As(err, &ce) {
		return usageError{err.Error()}
	}
	if err != nil {
		return err
	}
	keys, err := vault.ParseKeys(e.Getenv(vault.EnvKeys))
	if err != nil {
		return usageError{err.Error()}
	}
	db, err := store.OpenAndMigrate(ctx, databaseURL(e))
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := vault.New(db.Store, keys)
	if err != nil {
		return err
	}
	ss := make([]vault.Secret, len(secrets))
	for i, s := range secrets {
		ss[i] = s.Secret
	}
	var refs []string
	err = db.InTx(ctx, func(st *store.Store) error {
		var err error
		refs, err = v.Within(st).PutMany(ctx, ss)
		return err
	})
	if err != nil {
		return err
	}
	if out.json() {
		type stored struct {
			Name string `json:"name"`
			Ref  string `json:"credentials_ref"`
		}
		list := make([]stored, len(refs))
		for i, r := range refs {
			list[i] = stored{secrets[i].Name, r}
		}
		return writeJSON(e.Stdout, list)
	}
	w := csv.NewWriter(e.Stdout)
	if !refOnly {
		_ = w.Write([]string{"name", "credentials_ref"})
	}
	for i, r := range refs {
		_ = w.Write([]string{secrets[i].Name, r})
	}
	w.Flush()
	return w.Error()
}
