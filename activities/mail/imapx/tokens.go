package imapx

import (
	"context"
	"errors"
	"strings"
)

// TokenSource supplies OAuth access tokens for XOAUTH2/OAUTHBEARER logins to the server at
// addr: a valid one (refreshed shortly before it expires), or, when refused is the token the
// server just turned down, a new one. Errors it returns should be *Error (ClassAuth when the
// grant is gone for good, ClassConnect when the token endpoint is unreachable); others are
// treated as ClassAuth.
type TokenSource func(ctx context.Context, addr, refused string) (string, error)

func (c Config) oauth() bool {
	m := strings.ToLower(c.Auth)
	return m == "xoauth2" || m == "oauthbearer"
}

// withTokens logs in with a token from cred.Tokens and, if the server refuses it (expired or
// revoked mid-run), once more on a new connection with the token the source gives for the
// refused one.
func withTokens[T any](ctx context.Context, cfg Config, cred Credentials, dial func(context.Context, Config, Credentials) (T, error)) (T, error) {
	var zero T
	op := "login " + cfg.describe()
	tok, err := cred.Tokens(ctx, cfg.Addr, "")
	if err != nil {
		return zero, tokenError(op, err)
	}
	c, err := dial(ctx, cfg, Credentials{Token: tok})
	if ClassOf(err) != ClassAuth {
		return c, err
	}
	next, rerr := cred.Tokens(ctx, cfg.Addr, tok)
	if rerr != nil {
		return zero, tokenError(op, rerr)
	}
	if next == tok {
		return zero, err
	}
	return dial(ctx, cfg, Credentials{Token: next})
}

func tokenError(op string, err error) error {
	var e *Error
	if errors.As(err, &e) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &Error{Class: ClassAuth, Op: op, Err: err}
}
