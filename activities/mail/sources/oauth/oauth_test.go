package oauth_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/sources/oauth"
	"github.com/cutover/cutover/activities/mail/sources/oauth/oauthtest"
	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/activities/vault/vaulttest"
	"github.com/cutover/cutover/internal/testing/testenv"
)

func newVault(t *testing.T) *vault.Vault {
	t.Helper()
	db, err := store.OpenAndMigrate(context.Background(), testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	v, _ := vaulttest.New(t, db.Store)
	return v
}

func refresher(v *vault.Vault, idp *oauthtest.IdP) *oauth.Refresher {
	return &oauth.Refresher{Vault: v, Logger: slog.New(slog.DiscardHandler), Provider: func(name string) (oauth.Provider, error) {
		return oauth.Provider{Name: name, TokenURL: idp.TokenURL(), ClientID: idp.ClientID, ClientSecret: idp.ClientSecret}, nil
	}}
}

func put(t *testing.T, v *vault.Vault, s vault.Secret) string {
	t.Helper()
	ref, err := v.Put(context.Background(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestRefreshWhenExpiredOrExpiring(t *testing.T) {
	ctx := context.Background()
	v := newVault(t)
	idp := oauthtest.New(t, true)
	r := refresher(v, idp)
	for _, tc := range []struct {
		name        string
		expiry      time.Time
		wantRefresh bool
	}{
		{"expired", time.Now().Add(-time.Minute), true},
		{"within skew", time.Now().Add(2 * time.Minute), true},
		{"valid", time.Now().Add(time.Hour), false},
		{"no expiry known", time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			access, rt := idp.Grant("alice")
			ref := put(t, v, vault.Secret{OAuthToken: access, RefreshToken: rt, TokenExpiry: tc.expiry})
			before := idp.Refreshes()
			got, err := r.Token(ctx, ref, "imap.example.org:993", "")
			if err != nil {
				t.Fatal(err)
			}
			if refreshed := idp.Refreshes() > before; refreshed != tc.wantRefresh {
				t.Fatalf("refreshed = %v, want %v", refreshed, tc.wantRefresh)
			}
			if !tc.wantRefresh {
				if got != access {
					t.Fatalf("token changed without a refresh")
				}
				return
			}
			if got == access || !idp.Active(got) {
				t.Fatalf("refresh returned the old or an inactive token")
			}
			// Stored back, encrypted, with the rotated refresh token and the new expiry.
			s, err := v.Get(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if s.OAuthToken != got {
				t.Fatalf("s.OAuthToken = %v, want %v (got); vault not updated: expiry %v, refresh rotated %v",
					s.OAuthToken, got, s.TokenExpiry, s.RefreshToken != rt)
			}
			if s.RefreshToken == rt {
				t.Fatalf("s.RefreshToken = %v, want != rt; vault not updated: expiry %v, refresh rotated %v",
					s.RefreshToken, s.TokenExpiry, s.RefreshToken != rt)
			}
			if s.TokenExpiry.Before(time.Now().Add(50 * time.Minute)) {
				t.Fatalf("s.TokenExpiry.Before(time.Now().Add(50*time.Minute)) is true; vault not updated: expiry %v, refresh rotated %v",
					s.TokenExpiry, s.RefreshToken != rt)
			}
		})
	}
}

func TestRefusedTokenRefreshedOnce(t *testing.T) {
	ctx := context.Background()
	v := newVault(t)
	idp := oauthtest.New(t, false)
	r := refresher(v, idp)
	access, rt := idp.Grant("alice")
	ref := put(t, v, vault.Secret{OAuthToken: access, RefreshToken: rt, TokenExpiry: time.Now().Add(time.Hour)})
	idp.Revoke(access)

	// Eight folder workers see the same refusal at once: one refresh, one new token for all.
	var wg sync.WaitGroup
	got := make([]string, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = r.Token(ctx, ref, "imap.example.org", access)
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("got[i] = %v, want %v (got[0]); worker %d got a different or the refused token", got[i], got[0], i)
		}
		if got[i] == access {
			t.Fatalf("got[i] = %v, want != access; worker %d got a different or the refused token", got[i], i)
		}
	}
	if n := idp.Refreshes(); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
}

func TestRefreshFailures(t *testing.T) {
	ctx := context.Background()
	v := newVault(t)
	idp := oauthtest.New(t, false)
	r := refresher(v, idp)
	access, rt := idp.Grant("alice")
	ref := put(t, v, vault.Secret{OAuthToken: access, RefreshToken: rt, TokenExpiry: time.Now().Add(-time.Minute)})

	idp.FailNextRefresh(http.StatusBadRequest)
	_, err := r.Token(ctx, ref, "imap.example.org", "")
	if !errors.Is(err, oauth.ErrRefresh) {
		t.Fatalf("invalid_grant: %v, want ErrRefresh (permanent)", err)
	}
	idp.FailNextRefresh(http.StatusServiceUnavailable)
	_, err = r.Token(ctx, ref, "imap.example.org", "")
	if err == nil || errors.Is(err, oauth.ErrRefresh) {
		t.Fatalf("503: %v, want a transient error", err)
	}
	for _, e := range []error{err} {
		for _, secret := range []string{access, rt, idp.ClientSecret} {
			if strings.Contains(e.Error(), secret) {
				t.Fatalf("error leaks a secret: %v", e)
			}
		}
	}
	// No refresh token: expired is a clear error, not a login with a dead token.
	ref2 := put(t, v, vault.Secret{OAuthToken: access, TokenExpiry: time.Now().Add(-time.Minute)})
	if _, err := r.Token(ctx, ref2, "imap.example.org", ""); !errors.Is(err, oauth.ErrNoRefreshToken) {
		t.Fatalf("err = %v, want ErrNoRefreshToken", err)
	}
}

func TestProviderPresets(t *testing.T) {
	for addr, want := range map[string]string{
		"imap.gmail.com:993": oauth.Gmail, "IMAP.GoogleMail.com": oauth.Gmail,
		"outlook.office365.com:993": oauth.Office365, "imap-mail.outlook.com": oauth.Office365,
		"mail.example.org:143": oauth.Default,
	} {
		if got := oauth.ProviderName(addr); got != want {
			t.Errorf("ProviderName(%q) = %q, want %q", addr, got, want)
		}
	}
	t.Setenv("CUTOVER_OAUTH_OFFICE365_CLIENT_ID", "id")
	t.Setenv("CUTOVER_OAUTH_OFFICE365_TENANT", "contoso.onmicrosoft.com")
	p, err := oauth.ProviderFromEnv(oauth.Office365)
	if err != nil {
		t.Fatalf("err: want nil; office365 preset %v %v", p, err)
	}
	if p.TokenURL != "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token" {
		t.Fatalf("p.TokenURL = %v, want \"https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token\"; office365 preset %v %v",
			p.TokenURL, p, err)
	}
	if _, err := oauth.ProviderFromEnv(oauth.Default); err == nil {
		t.Fatal("default provider without a token URL accepted")
	}
}

// TestDovecotXOAUTH2 proves the offline setup the engine tests use: Dovecot's oauth2 passdb
// asks the test IdP, a revoked token is refused, the refreshed one logs in, over both
// mechanisms.
func TestDovecotXOAUTH2(t *testing.T) {
	ctx := context.Background()
	v := newVault(t)
	idp := oauthtest.New(t, true)
	lines, err := idp.DovecotConfig(filepath.Join(t.TempDir(), "oauth2.conf.ext"))
	if err != nil {
		t.Fatal(err)
	}
	d := testenv.StartDovecot(t, []testenv.User{{Name: "alice", Password: "unused-password"}}, testenv.WithDovecotConfig(lines...))
	access, rt := idp.Grant("alice")
	ref := put(t, v, vault.Secret{OAuthToken: access, RefreshToken: rt, TokenExpiry: time.Now().Add(time.Hour)})
	r := refresher(v, idp)

	for _, mech := range []string{"xoauth2", "oauthbearer"} {
		t.Run(mech, func(t *testing.T) {
			cfg := imapx.Config{Addr: d.Addr(), Security: "plain", User: "alice", Auth: mech}
			tok, err := r.Token(ctx, ref, cfg.Addr, "")
			if err != nil {
				t.Fatal(err)
			}
			c, err := imapx.Dial(ctx, cfg, imapx.Credentials{Token: tok})
			if err != nil {
				t.Fatalf("login with a valid token: %v\n%s", err, d.LogTail())
			}
			c.Logout()

			idp.Revoke(tok) // the token dies mid-run
			_, err = imapx.Dial(ctx, cfg, imapx.Credentials{Token: tok})
			if imapx.ClassOf(err) != imapx.ClassAuth {
				t.Fatalf("login with a revoked token: %v, want an auth failure", err)
			}
			tok2, err := r.Token(ctx, ref, cfg.Addr, tok)
			if err != nil {
				t.Fatal(err)
			}
			c, err = imapx.Dial(ctx, cfg, imapx.Credentials{Token: tok2})
			if err != nil {
				t.Fatalf("login with the refreshed token: %v", err)
			}
			c.Logout()
		})
	}
}
