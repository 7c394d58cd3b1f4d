// Package vault keeps mailbox credentials (migration_credentials) Fernet-encrypted in
// PostgreSQL. Workflow inputs carry only the credentials_ref that Put returns; activities call
// Get at the moment they log in, so no secret ever enters Temporal history.
//
// Keys come from CUTOVER_VAULT_KEYS, a comma-separated list of Fernet keys: the first encrypts,
// any decrypts, so an operator rotates by prepending a new key and running Rotate.
package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/fernet/fernet-go"
	"github.com/google/uuid"

	"github.com/cutover/cutover/activities/store"
	"github.com/cutover/cutover/internal/model"
)

// EnvKeys names the environment variable holding the keys.
const EnvKeys = "CUTOVER_VAULT_KEYS"

var (
	// ErrNoKey means no vault key is configured.
	ErrNoKey = errors.New("vault: no key configured (set " + EnvKeys + ")")
	// ErrInvalidKey means a configured key is not a Fernet key.
	ErrInvalidKey = errors.New("vault: invalid key")
	// ErrUnknownRef means no secret is stored under the reference.
	ErrUnknownRef = errors.New("vault: unknown credentials_ref")
	// ErrUndecryptable means none of the configured keys opens the stored secret.
	ErrUndecryptable = errors.New("vault: secret cannot be decrypted with the configured keys")
	// ErrTokenExpired means the OAuth access token has expired; Get still returns the secret so
	// the caller can refresh it with the refresh token.
	ErrTokenExpired = errors.New("vault: OAuth access token expired")
)

// Secret is what a mailbox logs in with. Its printing, logging and JSON forms are redacted so a
// stray %v, slog attribute or activity result cannot leak it.
type Secret struct {
	Password     string
	OAuthToken   string
	RefreshToken string
	TokenExpiry  time.Time // zero for passwords
}

const redacted = "vault.Secret{REDACTED}"

func (Secret) String() string             { return redacted }
func (Secret) GoString() string           { return redacted }
func (Secret) LogValue() slog.Value       { return slog.StringValue(redacted) }
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON refuses: a Secret must never become a payload (activity result, workflow input).
func (Secret) MarshalJSON() ([]byte, error) {
	return nil, errors.New("vault.Secret must not be serialized")
}

// Expired reports whether the OAuth token's expiry has passed at now.
func (s Secret) Expired(now time.Time) bool {
	return !s.TokenExpiry.IsZero() && !now.Before(s.TokenExpiry)
}

// sealed is the plaintext JSON inside the Fernet token: {password, oauth_token}.
type sealed struct {
	Password     string    `json:"password,omitempty"`
	OAuthToken   string    `json:"oauth_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenExpiry  time.Time `json:"token_expiry,omitzero"`
}

// ParseKeys decodes a comma-separated key list. Errors name the key's position, never its value.
func ParseKeys(list string) ([]*fernet.Key, error) {
	var keys []*fernet.Key
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, err := fernet.DecodeKey(p)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d of %d is not a 32-byte url-safe base64 Fernet key", ErrInvalidKey, i+1, len(parts))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	return keys, nil
}

// GenerateKey returns a new random key in the form CUTOVER_VAULT_KEYS expects.
func GenerateKey() (string, error) {
	var k fernet.Key
	if err := k.Generate(); err != nil {
		return "", fmt.Errorf("vault: generate key: %w", err)
	}
	return k.Encode(), nil
}

// Vault encrypts and decrypts credentials stored through a store.
type Vault struct {
	st   *store.Store
	keys []*fernet.Key
	now  func() time.Time
}

// New returns a vault over st with keys (first encrypts).
func New(st *store.Store, keys []*fernet.Key) (*Vault, error) {
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	return &Vault{st: st, keys: keys, now: time.Now}, nil
}

// FromEnv returns a vault with the keys in CUTOVER_VAULT_KEYS.
func FromEnv(st *store.Store) (*Vault, error) {
	keys, err := ParseKeys(os.Getenv(EnvKeys))
	if err != nil {
		return nil, err
	}
	return New(st, keys)
}

// Put encrypts s and stores it, optionally attached to a mailbox, returning its credentials_ref.
func (v *Vault) Put(ctx context.Context, s Secret, mailboxID *int64) (string, error) {
	blob, err := v.seal(s)
	if err != nil {
		return "", err
	}
	id := uuid.New()
	if err := v.st.InsertCredential(ctx, store.Credential{ID: id, MailboxID: mailboxID, SecretBlob: blob,
		ExpiresAt: expiry(s)}); err != nil {
		return "", fmt.Errorf("vault put: %w", err)
	}
	return id.String(), nil
}

// Within returns the vault over another store with the same keys: a transaction's, so
// secrets are stored together with what refers to them, or not at all.
func (v *Vault) Within(st *store.Store) *Vault {
	return &Vault{st: st, keys: v.keys, now: v.now}
}

// PutMany stores several secrets in one round trip (all or none) and returns their
// credentials_refs in order.
func (v *Vault) PutMany(ctx context.Context, ss []Secret) ([]string, error) {
	cs := make([]store.Credential, len(ss))
	refs := make([]string, len(ss))
	for i, s := range ss {
		blob, err := v.seal(s)
		if err != nil {
			return nil, err
		}
		cs[i] = store.Credential{ID: uuid.New(), SecretBlob: blob, ExpiresAt: expiry(s)}
		refs[i] = cs[i].ID.String()
	}
	if err := v.st.InsertCredentials(ctx, cs); err != nil {
		return nil, fmt.Errorf("vault put: %w", err)
	}
	return refs, nil
}

// Get decrypts the secret stored under ref. When the OAuth token has expired it returns the
// secret together with ErrTokenExpired.
func (v *Vault) Get(ctx context.Context, ref string) (Secret, error) {
	id, err := parseRef(ref)
	if err != nil {
		return Secret{}, err
	}
	c, err := v.st.GetCredential(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Secret{}, fmt.Errorf("%w %s", ErrUnknownRef, ref)
	}
	if err != nil {
		return Secret{}, fmt.Errorf("vault get %s: %w", ref, err)
	}
	s, err := v.open(c.SecretBlob)
	if err != nil {
		return Secret{}, fmt.Errorf("credentials_ref %s: %w", ref, err)
	}
	if s.Expired(v.now()) {
		return s, fmt.Errorf("credentials_ref %s: %w at %s", ref, ErrTokenExpired, s.TokenExpiry.UTC().Format(time.RFC3339))
	}
	return s, nil
}

// Update replaces the secret under ref (a refreshed OAuth token), encrypting with the current key.
func (v *Vault) Update(ctx context.Context, ref string, s Secret) error {
	id, err := parseRef(ref)
	if err != nil {
		return err
	}
	blob, err := v.seal(s)
	if err != nil {
		return err
	}
	if err := v.st.UpdateCredential(ctx, id, blob, expiry(s)); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w %s", ErrUnknownRef, ref)
	} else if err != nil {
		return fmt.Errorf("vault update %s: %w", ref, err)
	}
	return nil
}

// Rotate re-encrypts every stored secret with the first key; run after prepending a new key,
// then the old key can be removed. It returns how many secrets were re-encrypted.
func (v *Vault) Rotate(ctx context.Context) (int, error) {
	ids, err := v.st.ListCredentialIDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("vault rotate: %w", err)
	}
	for i, id := range ids {
		c, err := v.st.GetCredential(ctx, id)
		if err != nil {
			return i, fmt.Errorf("vault rotate: %w", err)
		}
		s, err := v.open(c.SecretBlob)
		if err != nil {
			return i, fmt.Errorf("vault rotate credentials_ref %s: %w", id, err)
		}
		blob, err := v.seal(s)
		if err != nil {
			return i, err
		}
		if err := v.st.UpdateCredential(ctx, id, blob, c.ExpiresAt); err != nil {
			return i, fmt.Errorf("vault rotate: %w", err)
		}
	}
	return len(ids), nil
}

func (v *Vault) seal(s Secret) ([]byte, error) {
	plain, err := json.Marshal(sealed(s))
	if err != nil {
		return nil, errors.New("vault: encode secret")
	}
	tok, err := fernet.EncryptAndSign(plain, v.keys[0])
	if err != nil {
		return nil, errors.New("vault: encrypt secret")
	}
	return tok, nil
}

func (v *Vault) open(blob []byte) (Secret, error) {
	// TTL 0: secrets do not age out; OAuth expiry is tracked explicitly.
	plain := fernet.VerifyAndDecrypt(blob, 0, v.keys)
	if plain == nil {
		return Secret{}, ErrUndecryptable
	}
	var s sealed
	if err := json.Unmarshal(plain, &s); err != nil {
		return Secret{}, errors.New("vault: stored secret is not valid JSON")
	}
	return Secret(s), nil
}

func parseRef(ref string) (uuid.UUID, error) {
	id, err := uuid.Parse(ref)
	if err != nil {
		// Never the value: it may be a secret pasted where its reference belongs.
		return uuid.Nil, fmt.Errorf("%w: the value %s", ErrUnknownRef, model.NotACredentialsRef)
	}
	return id, nil
}

func expiry(s Secret) *time.Time {
	if s.TokenExpiry.IsZero() {
		return nil
	}
	t := s.TokenExpiry
	return &t
}
