// Package oauth keeps the OAuth 2.0 access tokens of imap_oauth sources fresh. The access and
// refresh tokens live in the vault (Fernet-encrypted); Refresher hands the engine a valid
// access token for SASL XOAUTH2/OAUTHBEARER, refreshing it with the refresh token through the
// provider's token endpoint (golang.org/x/oauth2) shortly before it expires, when the vault
// says it already has, or when the server refused it mid-run, and stores the new token back
// encrypted. Tokens never appear in errors or logs.
//
// Providers are presets keyed by the IMAP host (Gmail, Office 365) with the OAuth client
// registered by the operator in the worker's environment:
//
//	CUTOVER_OAUTH_<NAME>_CLIENT_ID, CUTOVER_OAUTH_<NAME>_CLIENT_SECRET,
//	CUTOVER_OAUTH_<NAME>_TOKEN_URL (overrides the preset), CUTOVER_OAUTH_OFFICE365_TENANT
//
// where NAME is GMAIL, OFFICE365 or DEFAULT (any other host).
package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/cutover/cutover/activities/vault"
)

// Provider names.
const (
	Gmail     = "gmail"
	Office365 = "office365"
	Default   = "default"
)

// Provider is an authorization server's token endpoint and the client registered with it.
type Provider struct {
	Name         string
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
}

// String never shows the client secret.
func (p Provider) String() string { return "oauth.Provider{" + p.Name + " " + p.TokenURL + "}" }

// ProviderName picks the preset for an IMAP host ("host" or "host:port").
func ProviderName(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	switch {
	case host == "imap.gmail.com" || host == "imap.googlemail.com":
		return Gmail
	case host == "outlook.office365.com" || host == "outlook.office.com" || host == "imap-mail.outlook.com" ||
		strings.HasSuffix(host, ".outlook.com") || strings.HasSuffix(host, ".office365.com"):
		return Office365
	}
	return Default
}

// ProviderFromEnv builds a provider's configuration from its preset and the environment.
func ProviderFromEnv(name string) (Provider, error) {
	env := func(k string) string { return os.Getenv("CUTOVER_OAUTH_" + strings.ToUpper(name) + "_" + k) }
	p := Provider{Name: name, ClientID: env("CLIENT_ID"), ClientSecret: env("CLIENT_SECRET")}
	switch name {
	case Gmail:
		p.TokenURL = "https://oauth2.googleapis.com/token"
		p.Scopes = []string{"https://mail.google.com/"}
	case Office365:
		tenant := env("TENANT")
		if tenant == "" {
			tenant = "common"
		}
		p.TokenURL = "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token"
		p.Scopes = []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"}
	}
	if u := env("TOKEN_URL"); u != "" {
		p.TokenURL = u
	}
	if p.TokenURL == "" {
		return p, fmt.Errorf("%w: %s has no token endpoint (set CUTOVER_OAUTH_%s_TOKEN_URL)", ErrProvider, name, strings.ToUpper(name))
	}
	if p.ClientID == "" {
		return p, fmt.Errorf("%w: %s has no client id (set CUTOVER_OAUTH_%s_CLIENT_ID)", ErrProvider, name, strings.ToUpper(name))
	}
	return p, nil
}

// ErrProvider means the worker has no usable OAuth client for the provider (environment not
// set): permanent until an operator configures it.
var ErrProvider = errors.New("oauth provider not configured")

// ErrRefresh is a refresh the provider refused for good (revoked or unknown refresh token, bad
// client): the mailbox's owner must authorise again. Other refresh failures are transient.
var ErrRefresh = errors.New("oauth refresh refused")

// ErrNoRefreshToken means the access token is unusable and there is nothing to refresh it with.
var ErrNoRefreshToken = errors.New("oauth access token expired or refused and no refresh token is stored")

// DefaultSkew is how long before its expiry a token is refreshed.
const DefaultSkew = 5 * time.Minute

// Refresher hands out valid access tokens.
type Refresher struct {
	Vault *vault.Vault
	// Provider resolves a provider by name; nil uses ProviderFromEnv.
	Provider   func(name string) (Provider, error)
	HTTPClient *http.Client // nil: http.DefaultClient with a 30 s timeout
	Skew       time.Duration
	Now        func() time.Time
	Logger     *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (r *Refresher) lock(ref string) func() {
	r.mu.Lock()
	if r.locks == nil {
		r.locks = map[string]*sync.Mutex{}
	}
	l := r.locks[ref]
	if l == nil {
		l = &sync.Mutex{}
		r.locks[ref] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (r *Refresher) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Refresher) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Token returns a valid access token for the secret under ref, for an IMAP server at addr.
// force refreshes even a token that looks valid: the server has just refused it. forced
// refreshes of one ref are serialised, and a token another caller refreshed since the refused
// one was handed out is returned without a second refresh.
func (r *Refresher) Token(ctx context.Context, ref, addr string, refused string) (string, error) {
	unlock := r.lock(ref)
	defer unlock()
	s, err := r.Vault.Get(ctx, ref)
	expired := errors.Is(err, vault.ErrTokenExpired)
	if err != nil && !expired {
		return "", err
	}
	skew := r.Skew
	if skew == 0 {
		skew = DefaultSkew
	}
	fresh := s.OAuthToken != "" && !expired && (s.TokenExpiry.IsZero() || r.now().Add(skew).Before(s.TokenExpiry))
	if fresh && (refused == "" || refused != s.OAuthToken) {
		return s.OAuthToken, nil
	}
	if s.RefreshToken == "" {
		if s.OAuthToken != "" && !expired && refused == "" {
			return s.OAuthToken, nil // about to expire, nothing to refresh with: use it while it lasts
		}
		return "", ErrNoRefreshToken
	}
	name := ProviderName(addr)
	get := r.Provider
	if get == nil {
		get = ProviderFromEnv
	}
	p, err := get(name)
	if err != nil {
		return "", err
	}
	tok, err := r.refresh(ctx, p, s.RefreshToken)
	if err != nil {
		return "", err
	}
	s.OAuthToken = tok.AccessToken
	if tok.RefreshToken != "" {
		s.RefreshToken = tok.RefreshToken // providers that rotate refresh tokens
	}
	s.TokenExpiry = tok.Expiry
	if err := r.Vault.Update(ctx, ref, s); err != nil {
		return "", fmt.Errorf("store refreshed oauth token of %s: %w", ref, err)
	}
	reason := "expiring"
	switch {
	case refused != "":
		reason = "refused by the server"
	case expired:
		reason = "expired"
	}
	r.logger().Info("oauth token refreshed", "credentials_ref", ref, "provider", p.Name, "reason", reason,
		"expires", tok.Expiry.UTC().Format(time.RFC3339))
	return tok.AccessToken, nil
}

func (r *Refresher) refresh(ctx context.Context, p Provider, refreshToken string) (*oauth2.Token, error) {
	// Client credentials in the form body: Google and Microsoft both document it, and a fixed
	// style makes one request per refresh (auto-detection retries a refused request).
	conf := &oauth2.Config{ClientID: p.ClientID, ClientSecret: p.ClientSecret, Scopes: p.Scopes,
		Endpoint: oauth2.Endpoint{TokenURL: p.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	hc := r.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err == nil {
		if tok.AccessToken == "" {
			return nil, fmt.Errorf("oauth refresh at %s: %w: the answer holds no access token", p.TokenURL, ErrRefresh)
		}
		return tok, nil
	}
	// Rebuild the error from its parts: oauth2's own text quotes the response body.
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		msg := fmt.Sprintf("oauth refresh at %s: HTTP %d %s %s", p.TokenURL, status, re.ErrorCode, truncate(re.ErrorDescription, 200))
		// 4xx other than throttling means the grant or the client is bad: retrying cannot help.
		if status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout {
			return nil, fmt.Errorf("%s: %w", strings.TrimSpace(msg), ErrRefresh)
		}
		return nil, errors.New(strings.TrimSpace(msg))
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("oauth refresh at %s: %s", p.TokenURL, scrub(err.Error(), refreshToken))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// scrub removes a secret from a message, should a transport error ever echo a request.
func scrub(msg, secret string) string {
	if secret == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secret, "[REDACTED]")
}
