// Package oauthtest is a small OAuth 2.0 authorization server for tests: a token endpoint
// that refreshes access tokens and an RFC 7662 introspection endpoint Dovecot's oauth2 passdb
// asks, entirely offline (httptest).
package oauthtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// IdP issues and checks tokens.
type IdP struct {
	Server       *httptest.Server
	ClientID     string
	ClientSecret string

	mu        sync.Mutex
	active    map[string]string // access token -> user
	refresh   map[string]string // refresh token -> user
	n         int
	refreshes int
	failNext  int // status to answer the next refresh with (0: none)
	rotate    bool
	lifetime  time.Duration
}

// New starts an IdP; Rotate makes every refresh return a new refresh token too.
func New(t testing.TB, rotate bool) *IdP {
	t.Helper()
	p := &IdP{ClientID: "cutover-test", ClientSecret: "client-s3cret", active: map[string]string{},
		refresh: map[string]string{}, rotate: rotate, lifetime: time.Hour}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("POST /introspect", p.introspect)
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Server.Close)
	return p
}

// TokenURL is the token endpoint.
func (p *IdP) TokenURL() string { return p.Server.URL + "/token" }

// IntrospectionURL is the introspection endpoint.
func (p *IdP) IntrospectionURL() string { return p.Server.URL + "/introspect" }

// Grant issues an access token and a refresh token for user.
func (p *IdP) Grant(user string) (access, refresh string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	access, refresh = fmt.Sprintf("at-%d-%s", p.n, user), fmt.Sprintf("rt-%d-%s", p.n, user)
	p.active[access] = user
	p.refresh[refresh] = user
	return access, refresh
}

// Revoke makes an access token invalid, as its expiry or a password change would.
func (p *IdP) Revoke(access string) {
	p.mu.Lock()
	delete(p.active, access)
	p.mu.Unlock()
}

// RevokeAll makes every access token issued so far invalid.
func (p *IdP) RevokeAll() {
	p.mu.Lock()
	p.active = map[string]string{}
	p.mu.Unlock()
}

// Active reports whether an access token is valid.
func (p *IdP) Active(access string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.active[access]
	return ok
}

// Refreshes counts successful refreshes.
func (p *IdP) Refreshes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refreshes
}

// FailNextRefresh makes the next refresh answer with status (400 answers invalid_grant).
func (p *IdP) FailNextRefresh(status int) {
	p.mu.Lock()
	p.failNext = status
	p.mu.Unlock()
}

func (p *IdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	w.Header().Set("Content-Type", "application/json")
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.failNext; st != 0 {
		p.failNext = 0
		w.WriteHeader(st)
		if st == http.StatusBadRequest {
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"refresh token revoked"}`))
		}
		return
	}
	if id != p.ClientID || secret != p.ClientSecret {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	rt := r.PostForm.Get("refresh_token")
	user, ok := p.refresh[rt]
	if r.PostForm.Get("grant_type") != "refresh_token" || !ok {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	p.n++
	p.refreshes++
	access := fmt.Sprintf("at-%d-%s", p.n, user)
	p.active[access] = user
	resp := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": int(p.lifetime.Seconds())}
	if p.rotate {
		delete(p.refresh, rt)
		nrt := fmt.Sprintf("rt-%d-%s", p.n, user)
		p.refresh[nrt] = user
		resp["refresh_token"] = nrt
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// introspect answers Dovecot's oauth2 passdb (introspection_mode = post).
func (p *IdP) introspect(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	tok := r.PostForm.Get("token")
	if tok == "" {
		tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	p.mu.Lock()
	user, ok := p.active[tok]
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		_, _ = w.Write([]byte(`{"active":false}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "username": user})
}

// DovecotConfig returns testenv.WithDovecotConfig lines enabling XOAUTH2 and OAUTHBEARER with
// an oauth2 passdb that asks this IdP; confPath is where to write the passdb's own file.
func (p *IdP) DovecotConfig(confPath string) ([]string, error) {
	conf := "introspection_mode = post\n" +
		"introspection_url = " + p.IntrospectionURL() + "\n" +
		"force_introspection = yes\n" +
		"username_attribute = username\n" +
		"active_attribute = active\n" +
		"active_value = true\n" +
		"debug = yes\n"
	if err := writeFile(confPath, conf); err != nil {
		return nil, err
	}
	return []string{
		"auth_mechanisms = plain login xoauth2 oauthbearer",
		"passdb {",
		"  driver = oauth2",
		"  mechanisms = xoauth2 oauthbearer",
		"  args = " + confPath,
		"}",
	}, nil
}

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o644) }
