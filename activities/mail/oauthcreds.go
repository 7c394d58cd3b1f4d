package mail

import (
	"context"
	"errors"
	"sync"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/activities/mail/sources/oauth"
	"github.com/cutover/cutover/activities/vault"
)

// refreshers holds one oauth.Refresher per vault, so every pass and folder worker of a worker
// process serialises its refreshes of a credentials_ref through the same lock.
var refreshers sync.Map // *vault.Vault → *oauth.Refresher

func (a *Activities) refresher() *oauth.Refresher {
	r, _ := refreshers.LoadOrStore(a.Vault, &oauth.Refresher{Vault: a.Vault, Logger: a.logger()})
	return r.(*oauth.Refresher)
}

// oauthTokens is the token source of an OAuth credentials_ref (imap_oauth): a valid access
// token at every login, refreshed before it expires or after the server refused it, stored
// back in the vault. Its errors carry the class the workflows act on.
func (a *Activities) oauthTokens(ref string) imapx.TokenSource {
	r := a.refresher()
	return func(ctx context.Context, addr, refused string) (string, error) {
		tok, err := r.Token(ctx, ref, addr, refused)
		op := "oauth token for " + addr
		switch {
		case err == nil:
			return tok, nil
		case errors.Is(err, oauth.ErrRefresh) || errors.Is(err, oauth.ErrNoRefreshToken):
			return "", &imapx.Error{Class: imapx.ClassAuth, Op: op, Err: err}
		case errors.Is(err, oauth.ErrProvider) || errors.Is(err, vault.ErrUnknownRef) ||
			errors.Is(err, vault.ErrUndecryptable) || errors.Is(err, vault.ErrNoKey):
			return "", &CredentialsError{Ref: ref, Err: err}
		case ctx.Err() != nil:
			return "", ctx.Err()
		}
		return "", &imapx.Error{Class: imapx.ClassConnect, Op: op, Err: err} // token endpoint unreachable: retry
	}
}
