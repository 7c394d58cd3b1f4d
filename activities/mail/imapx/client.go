package imapx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// Config says how to reach and log in to one account. It holds no secret.
type Config struct {
	Addr               string // host:port
	Security           string // "tls" (default), "starttls", "plain"
	CAFile             string // PEM bundle trusted in addition to the system roots
	InsecureSkipVerify bool
	User               string // the mailbox to open
	AuthUser           string // authenticate as this admin/proxy user, acting as User (SASL PLAIN authzid)
	Auth               string // "login" (default), "plain", "xoauth2", "oauthbearer"
	DialTimeout        time.Duration
}

// Credentials are the secret half of a login. Their printed forms are redacted.
type Credentials struct {
	Password string // for login/plain
	Token    string // OAuth access token for xoauth2/oauthbearer
	// Tokens, when set, supplies the OAuth token at each xoauth2/oauthbearer login instead of
	// Token, and a fresh one when the server refuses it (tokens.go).
	Tokens TokenSource
}

func (Credentials) String() string   { return "imapx.Credentials{REDACTED}" }
func (Credentials) GoString() string { return "imapx.Credentials{REDACTED}" }

// Validate checks the configuration without dialling.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("address %q: want host:port", c.Addr)
	}
	switch c.Security {
	case "", "tls", "starttls", "plain":
	default:
		return fmt.Errorf("security %q: want tls, starttls or plain", c.Security)
	}
	switch c.mech() {
	case "login", "plain", "xoauth2", "oauthbearer":
	default:
		return fmt.Errorf("auth %q: want login, plain, xoauth2 or oauthbearer", c.Auth)
	}
	if c.User == "" {
		return errors.New("user is empty")
	}
	return nil
}

func (c Config) mech() string {
	m := strings.ToLower(c.Auth)
	if m == "" {
		m = "login"
	}
	// LOGIN cannot carry an authorization identity: an admin login acting for a user is PLAIN.
	if m == "login" && c.AuthUser != "" {
		m = "plain"
	}
	return m
}

func (c Config) describe() string { return c.User + "@" + c.Addr }

// TLSConfig returns the client TLS configuration for the account.
func (c Config) TLSConfig() (*tls.Config, error) {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

func (c Config) dialer() *net.Dialer {
	t := c.DialTimeout
	if t == 0 {
		t = 30 * time.Second
	}
	// TCP keepalives find a dead peer during a long FETCH or an idle control connection.
	return &net.Dialer{Timeout: t, KeepAlive: 30 * time.Second}
}

// Client is a logged-in go-imap client with its account's configuration.
type Client struct {
	*imapclient.Client
	Config Config
	Timing Timing
	// Behind: the commands of DialBehind went out behind the LOGIN, before its answer.
	Behind bool
}

// Timing is when Dial began, had its connection (TCP and TLS), read the greeting and had the
// login's answer: what a session cost before its first command, for a pass's timeline.
type Timing struct {
	Start, Connected, Greeted, LoggedIn time.Time
}

// Dial connects, secures and logs in. Failures are *Error with ClassConnect, ClassTLS,
// ClassAuth or ClassThrottled.
func Dial(ctx context.Context, cfg Config, cred Credentials) (*Client, error) {
	return DialBehind(ctx, cfg, cred, nil)
}

// DialBehind is Dial, with behind called to write commands right behind a password LOGIN,
// before its answer, so that over a long link they share its round trip (Client.Behind says
// they went). The greeting is waited for first; other mechanisms never call behind. What the
// server does with input pipelined behind a LOGIN is its own: the caller decides where it is
// safe, and must cope with commands the server refused or never answered.
func DialBehind(ctx context.Context, cfg Config, cred Credentials, behind func(*imapclient.Client)) (*Client, error) {
	if cred.Tokens != nil && cfg.oauth() {
		return withTokens(ctx, cfg, cred, Dial)
	}
	op := "connect " + cfg.describe()
	if err := cfg.Validate(); err != nil {
		return nil, errorf(ClassProtocol, op, "%v", err)
	}
	opts := &imapclient.Options{Dialer: cfg.dialer()}
	var err error
	if cfg.Security != "plain" {
		if opts.TLSConfig, err = cfg.TLSConfig(); err != nil {
			return nil, errorf(ClassTLS, op, "%v", err)
		}
	}
	type result struct {
		c         *imapclient.Client
		connected time.Time
		err       error
	}
	tm := Timing{Start: time.Now()}
	done := make(chan result, 1)
	go func() {
		var c *imapclient.Client
		var err error
		switch cfg.Security {
		case "plain":
			c, err = imapclient.DialInsecure(cfg.Addr, opts)
		case "starttls":
			c, err = imapclient.DialStartTLS(cfg.Addr, opts)
		default:
			c, err = imapclient.DialTLS(cfg.Addr, opts)
		}
		var connected time.Time
		if err == nil {
			connected = time.Now()
			err = c.WaitGreeting()
			if err != nil {
				c.Close()
			}
		}
		done <- result{c, connected, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		go func() {
			if r := <-done; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, &Error{Class: ClassConnect, Op: op, Err: ctx.Err()}
	}
	if r.err != nil {
		return nil, classifyDial(op, r.err)
	}
	tm.Connected, tm.Greeted = r.connected, time.Now()
	c := &Client{Client: r.c, Config: cfg}
	if err := c.login(ctx, cred, behind); err != nil {
		c.Close()
		return nil, err
	}
	tm.LoggedIn = time.Now()
	c.Timing = tm
	return c, nil
}

func classifyDial(op string, err error) error {
	var (
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
	)
	if errors.As(err, &certErr) || errors.As(err, &recErr) || errors.As(err, &uaErr) || errors.As(err, &hostErr) ||
		errors.As(err, &invErr) || strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "STARTTLS") {
		return &Error{Class: ClassTLS, Op: op, Err: err}
	}
	return Classify(op, err, ClassConnect)
}

func (c *Client) login(ctx context.Context, cred Credentials, behind func(*imapclient.Client)) error {
	cfg := c.Config
	op := "login " + cfg.describe()
	var err error
	switch cfg.mech() {
	case "login":
		err = waitCtx(ctx, c.Client, func() error {
			cmd := c.Login(cfg.User, cred.Password)
			if behind != nil {
				behind(c.Client)
				c.Behind = true
			}
			return cmd.Wait()
		})
	default:
		var sc sasl.Client
		sc, err = saslClient(cfg, cred)
		if err == nil {
			err = waitCtx(ctx, c.Client, func() error { return c.Authenticate(sc) })
		}
	}
	if err != nil {
		// Any NO to a login is a credentials problem unless the server says otherwise.
		cerr := Classify(op, err, ClassAuth)
		var e *Error
		if errors.As(cerr, &e) && e.Class == ClassProtocol {
			e.Class = ClassAuth
		}
		return cerr
	}
	return nil
}

// waitCtx runs a blocking command, closing the connection if ctx ends first.
func waitCtx(ctx context.Context, c *imapclient.Client, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.Close()
		<-done
		return ctx.Err()
	}
}

// saslClient builds the SASL mechanism for the account.
func saslClient(cfg Config, cred Credentials) (sasl.Client, error) {
	switch cfg.mech() {
	case "plain":
		authc, authz := cfg.User, ""
		if cfg.AuthUser != "" {
			authc, authz = cfg.AuthUser, cfg.User
		}
		return sasl.NewPlainClient(authz, authc, cred.Password), nil
	case "xoauth2":
		return xoauth2{user: cfg.User, token: cred.Token}, nil
	case "oauthbearer":
		return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: cfg.User, Token: cred.Token}), nil
	}
	return nil, fmt.Errorf("no SASL mechanism for auth %q", cfg.Auth)
}

// xoauth2 is Google's and Microsoft's XOAUTH2 mechanism.
type xoauth2 struct{ user, token string }

func (x xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

// Next answers an error challenge with an empty response, as the mechanism requires; the
// server then fails the command with its error.
func (x xoauth2) Next([]byte) ([]byte, error) { return []byte{}, nil }

// Has reports whether the server advertises a capability.
func (c *Client) Has(cap imap.Cap) bool { return c.Caps().Has(cap) }

// AppendLimit returns the server-wide APPENDLIMIT (RFC 7889) in bytes, 0 if none.
func (c *Client) AppendLimit() int64 {
	for cp := range c.Caps() {
		s := string(cp)
		if v, ok := strings.CutPrefix(strings.ToUpper(s), "APPENDLIMIT="); ok {
			var n int64
			if _, err := fmt.Sscan(v, &n); err == nil {
				return n
			}
		}
	}
	return 0
}

// Logout ends the session politely and closes without waiting for the server's answer: a
// session's commands have all been answered by then, the answer to LOGOUT tells nothing, and
// over a long link waiting for it would cost every pass a round trip. The LOGOUT is written and
// flushed before the connection closes (the write bounded to 2 s), so the server still logs the
// session out rather than seeing it drop.
func (c *Client) Logout() {
	done := make(chan struct{})
	go func() {
		_ = c.Client.Logout() // written and flushed when it returns
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	_ = c.Close()
}

// Noop checks the connection is alive.
func (c *Client) Noop(ctx context.Context) error {
	return Classify("noop "+c.Config.describe(), waitCtx(ctx, c.Client, func() error { return c.Client.Noop().Wait() }), ClassConnect)
}
