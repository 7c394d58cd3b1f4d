package vault_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fernet/fernet-go"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/testing/testenv"
)

const (
	password = "pw-Sup3r-s3cret-§"
	token    = "ya29.access-token-value"
	refresh  = "1//refresh-token-value"
)

func secrets() []string { return []string{password, token, refresh} }

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenAndMigrate(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func newKey(t *testing.T) string {
	t.Helper()
	k, err := vault.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustVault(t *testing.T, db *store.DB, keyList string) *vault.Vault {
	t.Helper()
	keys, err := vault.ParseKeys(keyList)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(db.Store, keys)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRoundTripStoresOnlyCiphertext(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	v := mustVault(t, db, newKey(t))
	expiry := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	ref, err := v.Put(ctx, vault.Secret{Password: password, OAuthToken: token, RefreshToken: refresh, TokenExpiry: expiry}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.Password != password {
		t.Fatalf("got.Password = %v, want %v (password); round trip changed the secret", got.Password, password)
	}
	if got.OAuthToken != token {
		t.Fatalf("got.OAuthToken = %v, want %v (token); round trip changed the secret", got.OAuthToken, token)
	}
	if got.RefreshToken != refresh {
		t.Fatalf("got.RefreshToken = %v, want %v (refresh); round trip changed the secret",
			got.RefreshToken, refresh)
	}
	if !got.TokenExpiry.Equal(expiry) {
		t.Fatalf("got.TokenExpiry.Equal(expiry) is false; round trip changed the secret")
	}
	var blob []byte
	var expiresAt time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT secret_blob, expires_at FROM migration_credentials WHERE id = $1`, ref).
		Scan(&blob, &expiresAt); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets() {
		if bytes.Contains(blob, []byte(s)) {
			t.Fatal("secret stored in clear")
		}
	}
	if !expiresAt.Equal(expiry) {
		t.Fatalf("expires_at = %v, want %v", expiresAt, expiry)
	}
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	oldKey, newK := newKey(t), newKey(t)
	ref, err := mustVault(t, db, oldKey).Put(ctx, vault.Secret{Password: password}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// New key first: still decrypts what the old key encrypted.
	rotating := mustVault(t, db, newK+","+oldKey)
	if s, err := rotating.Get(ctx, ref); err != nil {
		t.Fatalf("err: want nil; get during rotation: %v", err)
	} else if s.Password != password {
		t.Fatalf("s.Password = %v, want %v (password); get during rotation: %v", s.Password, password, err)
	}
	n, err := rotating.Rotate(ctx)
	if err != nil {
		t.Fatalf("err: want nil; rotate = %d, %v", n, err)
	}
	if n != 1 {
		t.Fatalf("n: want 1; rotate = %d, %v", n, err)
	}
	// Old key removed: the re-encrypted secret opens with the new key alone…
	if s, err := mustVault(t, db, newK).Get(ctx, ref); err != nil {
		t.Fatalf("err: want nil; get after rotation with new key only: %v", err)
	} else if s.Password != password {
		t.Fatalf("s.Password = %v, want %v (password); get after rotation with new key only: %v",
			s.Password, password, err)
	}
	// …and no longer with the old one.
	if _, err := mustVault(t, db, oldKey).Get(ctx, ref); !errors.Is(err, vault.ErrUndecryptable) {
		t.Fatalf("old key after rotation: err = %v, want ErrUndecryptable", err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	v := mustVault(t, db, newKey(t))
	ref, err := v.Put(ctx, vault.Secret{Password: password}, nil)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"no key", func() error { _, err := vault.ParseKeys(" , "); return err }, vault.ErrNoKey},
		{"no key in env", func() error {
			t.Setenv(vault.EnvKeys, "")
			_, err := vault.FromEnv(db.Store)
			return err
		}, vault.ErrNoKey},
		{"invalid key", func() error { _, err := vault.ParseKeys(newKey(t) + ",not-a-key"); return err }, vault.ErrInvalidKey},
		{"wrong key", func() error { _, err := mustVault(t, db, newKey(t)).Get(ctx, ref); return err }, vault.ErrUndecryptable},
		{"unknown ref", func() error {
			_, err := v.Get(ctx, "00000000-0000-4000-8000-000000000000")
			return err
		}, vault.ErrUnknownRef},
		{"malformed ref", func() error { _, err := v.Get(ctx, "'; DROP TABLE x"); return err }, vault.ErrUnknownRef},
		{"update unknown ref", func() error {
			return v.Update(ctx, "00000000-0000-4000-8000-000000000000", vault.Secret{Password: password})
		}, vault.ErrUnknownRef},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			assertNoSecret(t, err.Error())
			if strings.Contains(err.Error(), "DROP TABLE") {
				t.Errorf("the error repeats the value given as a reference (it may be a secret): %v", err)
			}
		})
	}
}

func TestExpiredTokenReturnsSecretForRefresh(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	v := mustVault(t, db, newKey(t))
	ref, err := v.Put(ctx, vault.Secret{OAuthToken: token, RefreshToken: refresh, TokenExpiry: time.Now().Add(-time.Minute)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := v.Get(ctx, ref)
	if !errors.Is(err, vault.ErrTokenExpired) {
		t.Fatalf("err = %v, want ErrTokenExpired", err)
	}
	assertNoSecret(t, err.Error())
	if s.RefreshToken != refresh {
		t.Fatal("expired secret not returned for refresh")
	}
	// A refreshed token stored back is served without error.
	if err := v.Update(ctx, ref, vault.Secret{OAuthToken: "new-" + token, RefreshToken: refresh,
		TokenExpiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if s, err := v.Get(ctx, ref); err != nil {
		t.Fatalf("err: want nil; after refresh: %v", err)
	} else if s.OAuthToken != "new-"+token {
		t.Fatalf("s.OAuthToken = %v, want %v (\"new-\"+token); after refresh: %v", s.OAuthToken, "new-"+token, err)
	}
}

// TestSecretNeverPrinted captures everything a careless caller could do with a Secret: log it,
// print it with every verb, put it in an error, marshal it as an activity result would.
func TestSecretNeverPrinted(t *testing.T) {
	s := vault.Secret{Password: password, OAuthToken: token, RefreshToken: refresh, TokenExpiry: time.Now()}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		log := slog.New(h)
		log.Info("login", "secret", s, "ptr", &s)
		log.Info("group", slog.Group("g", "secret", s))
		log.Info("any", slog.Any("secret", s))
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&buf, verb+"\n", s)
		fmt.Fprintf(&buf, verb+"\n", &s)
		fmt.Fprintf(&buf, verb+"\n", struct{ S vault.Secret }{s})
	}
	buf.WriteString(fmt.Errorf("login failed with %v", s).Error())
	if b, err := json.Marshal(s); err == nil {
		t.Fatalf("a Secret marshalled to JSON: %s", b)
	}
	if b, err := json.Marshal(struct{ S vault.Secret }{s}); err == nil {
		t.Fatalf("a struct holding a Secret marshalled to JSON: %s", b)
	}
	assertNoSecret(t, buf.String())
	if !strings.Contains(buf.String(), "REDACTED") {
		t.Fatal("redaction marker missing: the checks above printed nothing")
	}
}

func TestKeyNeverInErrors(t *testing.T) {
	k := newKey(t)
	broken := k[:len(k)-4] // right alphabet, wrong length
	_, err := vault.ParseKeys(k + "," + broken)
	if !errors.Is(err, vault.ErrInvalidKey) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), broken) || strings.Contains(err.Error(), k) {
		t.Fatalf("error shows key material: %v", err)
	}
	// Sanity: a generated key is a real Fernet key.
	if _, err := fernet.DecodeKey(k); err != nil {
		t.Fatal(err)
	}
}

func assertNoSecret(t *testing.T, out string) {
	t.Helper()
	for _, s := range secrets() {
		if strings.Contains(out, s) {
			t.Fatalf("output contains a secret")
		}
	}
}
