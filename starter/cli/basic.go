package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/schema"
)

// Version is set at build time with -ldflags "-X github.com/cutover/cutover/starter/cli.Version=…".
var Version = "dev"

func init() {
	register("version", "print the version and the schema version this binary carries", runVersion)
	register("schema apply", "create or upgrade the control tables in DATABASE_URL", runSchemaApply)
	register("vault put", "store a secret read from stdin (--batch: a CSV of them); prints its credentials_ref", runVaultPut)
	register("vault rotate", "re-encrypt every secret with the first key of CUTOVER_VAULT_KEYS", runVaultRotate)
	register("vault genkey", "print a new random vault key", runVaultGenkey)
}

func runVersion(_ context.Context, e *Env, args []string) error {
	fs := newFlags(e, "version")
	out := bindOutput(fs)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if out.json() {
		return writeJSON(e.Stdout, map[string]any{"version": Version, "go": runtime.Version(), "schema": schema.Latest()})
	}
	fmt.Fprintf(e.Stdout, "cutover %s (%s, schema %d)\n", Version, runtime.Version(), schema.Latest())
	return nil
}

func databaseURL(e *Env) string {
	if u := e.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return store.DefaultURL
}

func runSchemaApply(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "schema apply")
	out := bindOutput(fs)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	db, err := store.Open(ctx, databaseURL(e))
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := schema.Apply(ctx, db.Pool)
	if err != nil {
		return err
	}
	if out.json() {
		return writeJSON(e.Stdout, map[string]any{"applied": append([]int{}, res.Applied...), "version": res.Version})
	}
	if len(res.Applied) == 0 {
		fmt.Fprintf(e.Stdout, "schema is up to date at version %d\n", res.Version)
		return nil
	}
	fmt.Fprintf(e.Stdout, "applied %d migration(s); schema is at version %d\n", len(res.Applied), res.Version)
	return nil
}

func openVault(ctx context.Context, e *Env) (*vault.Vault, func(), error) {
	keys, err := vault.ParseKeys(e.Getenv(vault.EnvKeys))
	if err != nil {
		return nil, nil, usageError{err.Error()}
	}
	db, err := store.OpenAndMigrate(ctx, databaseURL(e))
	if err != nil {
		return nil, nil, err
	}
	v, err := vault.New(db.Store, keys)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return v, db.Close, nil
}

// oauthInput is the JSON `vault put --type oauth` reads: the shape of an oauth2.Token.
type oauthInput struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	Expiry       time.Time `json:"expiry"`
}

func runVaultPut(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "vault put")
	refOnly := fs.Bool("ref-only", false, "print only the credentials_ref (for scripts)")
	kind := fs.String("type", "password", "password: stdin is the password; oauth: stdin is JSON {access_token, refresh_token, expiry}")
	mailboxID := fs.Int64("mailbox-id", 0, "attach the secret to this migration_mailboxes id")
	batch := fs.Bool("batch", false, "store several secrets in one go: stdin is a CSV with a name column and a password "+
		"(or refresh_token, access_token, expiry) column; prints name,credentials_ref per secret")
	out := bindOutput(fs)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *batch {
		if *mailboxID != 0 || *kind != "password" {
			return usagef("--batch takes the kind of each secret from its columns, and attaches none to a mailbox")
		}
		return runVaultPutBatch(ctx, e, out, *refOnly)
	}
	// Read at most 1 MiB: a secret, not a file.
	raw, err := io.ReadAll(io.LimitReader(e.Stdin, 1<<20))
	if err != nil {
		return fmt.Errorf("read secret from stdin: %w", err)
	}
	var s vault.Secret
	switch *kind {
	case "password":
		// One line; the terminal's newline is not part of the password.
		line, _, _ := bufio.NewReader(strings.NewReader(string(raw))).ReadLine()
		if len(line) == 0 {
			return usagef("no password on stdin")
		}
		s.Password = string(line)
	case "oauth":
		var in oauthInput
		if err := json.Unmarshal(raw, &in); err != nil {
			return usagef("stdin is not OAuth token JSON {access_token, refresh_token, expiry}")
		}
		if in.AccessToken == "" && in.RefreshToken == "" {
			return usagef("OAuth JSON has neither access_token nor refresh_token")
		}
		s = vault.Secret{OAuthToken: in.AccessToken, RefreshToken: in.RefreshToken, TokenExpiry: in.Expiry}
	default:
		return usagef("--type %q: want password or oauth", *kind)
	}
	v, done, err := openVault(ctx, e)
	if err != nil {
		return err
	}
	defer done()
	var mb *int64
	if *mailboxID != 0 {
		mb = mailboxID
	}
	ref, err := v.Put(ctx, s, mb)
	if err != nil {
		return err
	}
	if *refOnly {
		fmt.Fprintln(e.Stdout, ref)
		return nil
	}
	if out.json() {
		return writeJSON(e.Stdout, map[string]string{"credentials_ref": ref})
	}
	fmt.Fprintf(e.Stdout, "credentials_ref: %s\nUse it as credentials_ref in a job spec; the secret itself never leaves the vault.\n", ref)
	return nil
}

func runVaultRotate(ctx context.Context, e *Env, args []string) error {
	fs := newFlags(e, "vault rotate")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	v, done, err := openVault(ctx, e)
	if err != nil {
		return err
	}
	defer done()
	n, err := v.Rotate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "re-encrypted %d secret(s) with the first key; older keys may now be removed\n", n)
	return nil
}

func runVaultGenkey(_ context.Context, e *Env, args []string) error {
	fs := newFlags(e, "vault genkey")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	k, err := vault.GenerateKey()
	if err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, k)
	return nil
}
