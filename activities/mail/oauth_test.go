package mail

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/mail/sources/oauth/oauthtest"
	"github.com/cutover/cutover/activities/mail/sources/sourcetest"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// oauthBulk is a corpus big enough for a pass to be interrupted in the middle.
func oauthBulk(n int) []sourcetest.Message {
	folders := []string{"INBOX", "Sent", "Archive", "Projects/2024"}
	msgs := make([]sourcetest.Message, n)
	for i := range msgs {
		d := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		body := fmt.Sprintf("From: s%d@example.com\r\nSubject: bulk %d\r\nMessage-ID: <bulk-%d@example.com>\r\nDate: %s\r\n\r\n%0512d\r\n",
			i%9, i, i, d.Format(time.RFC1123Z), i)
		msgs[i] = sourcetest.Message{Folder: folders[i%len(folders)], Date: d, Flags: []string{`\Seen`}, Raw: []byte(body)}
	}
	return msgs
}

// TestOAuthTokenRefreshedMidRun: an imap_oauth mailbox on a Dovecot whose oauth2 passdb asks a
// local IdP. The stored token has expired, so the first login refreshes it; mid-run the IdP
// revokes every token and the source drops its connections, the reconnect is refused, the
// engine refreshes again, and the pass completes and verifies.
func TestOAuthTokenRefreshedMidRun(t *testing.T) {
	e := newFileEnv(t, 1)
	ctx := context.Background()
	idp := oauthtest.New(t, true)
	t.Setenv("CUTOVER_OAUTH_DEFAULT_TOKEN_URL", idp.TokenURL())
	t.Setenv("CUTOVER_OAUTH_DEFAULT_CLIENT_ID", idp.ClientID)
	t.Setenv("CUTOVER_OAUTH_DEFAULT_CLIENT_SECRET", idp.ClientSecret)
	lines, err := idp.DovecotConfig(filepath.Join(t.TempDir(), "oauth2.conf.ext"))
	if err != nil {
		t.Fatal(err)
	}
	src := testenv.StartDovecot(t, []testenv.User{{Name: "alice", Password: "not-used"}},
		testenv.WithDovecotConfig(append([]string{"namespace inbox {", "  separator = /", "}"}, lines...)...))
	corpus := oauthBulk(1200)
	if err := sourcetest.WriteMaildir(src.Maildir("alice"), corpus); err != nil {
		t.Fatal(err)
	}
	src.FixOwnership(t)

	access, rt := idp.Grant("alice")
	ref, err := e.vault.Put(ctx, vault.Secret{OAuthToken: access, RefreshToken: rt, TokenExpiry: time.Now().Add(-time.Minute)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := e.mailbox(model.SourceIMAPOAuth, "")
	spec.Source = emailapi.Endpoint{Addr: src.Addr(), Security: "plain", User: "alice", Auth: "xoauth2", CredentialsRef: ref}

	eng := e.acts.engine()
	eng.ProgressEvery = 5 * time.Millisecond
	eng.ReconnectDelay = 100 * time.Millisecond
	eng.BatchMessages = 8 // small batches: the pass lasts long enough to be cut
	var once sync.Once
	cut := make(chan struct{})
	st, err := eng.Sync(ctx, emailapi.PassRequest{Spec: spec, Mode: model.ModeCopy, RunType: model.RunInitial, Phase: model.PhaseInitialSync, Parallelism: 1},
		SyncOptions{OnProgress: func(p emailapi.Progress) {
			if p.Counters.Transferred < 100 {
				return
			}
			once.Do(func() {
				defer close(cut)
				if n := idp.Refreshes(); n != 1 {
					t.Errorf("%d refreshes before the cut, want 1 (the expired token)", n)
				}
				idp.RevokeAll()
				if _, err := src.Doveadm(t, "kick", "alice"); err != nil {
					t.Errorf("kick: %v", err)
				}
			})
		}})
	if err != nil {
		t.Fatalf("pass: %v\n%s", err, src.LogTail())
	}
	select {
	case <-cut:
	default:
		t.Fatal("the pass ended before the cut: make the corpus bigger")
	}
	if st.Transferred != int64(len(corpus)) {
		t.Fatalf("st.Transferred: want int64(len(corpus)); transferred %d pending %d, want %d, 0",
			st.Transferred, st.Pending, len(corpus))
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; transferred %d pending %d, want %d, 0",
			st.Transferred, st.Pending, len(corpus))
	}
	if st.ErrorsByClass["reconnect"] == 0 {
		t.Errorf("no reconnect recorded: the cut did not reach the pass (%v)", st.ErrorsByClass)
	}
	if n := idp.Refreshes(); n != 2 {
		t.Errorf("%d refreshes, want 2 (expired at start, revoked mid-run)", n)
	}
	sec, err := e.vault.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !idp.Active(sec.OAuthToken) || sec.RefreshToken == rt {
		t.Error("the vault does not hold the live token and the rotated refresh token")
	}
	e.verify(spec, 0)
}
