// Package codec encrypts Temporal payloads (workflow inputs, results, signals, memos, heartbeat
// details) with AES-256-GCM before they leave the process, so the Temporal server and its
// database only ever hold ciphertext. It is optional: enabled when CUTOVER_PAYLOAD_KEYS is set.
//
// Keys rotate like the vault's: the first key encrypts, any listed key decrypts. The Temporal
// UI and CLI read encrypted histories through the codec HTTP endpoint (`cutover codec-server`).
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// EnvKeys names the environment variable with the comma-separated base64 keys.
const EnvKeys = "CUTOVER_PAYLOAD_KEYS"

const (
	metaEncoding = "encoding"
	metaKeyID    = "encryption-key-id"
	encEncrypted = "binary/encrypted"
)

// ErrUnknownKey means a payload was encrypted with a key not in the configured list.
var ErrUnknownKey = errors.New("codec: payload encrypted with an unknown key")

type key struct {
	id   string
	aead cipher.AEAD
}

// Codec is a converter.PayloadCodec.
type Codec struct {
	keys []key
}

// New builds a codec from raw 32-byte keys; the first encrypts.
func New(raw ...[]byte) (*Codec, error) {
	if len(raw) == 0 {
		return nil, errors.New("codec: no key")
	}
	c := &Codec{}
	for i, k := range raw {
		if len(k) != 32 {
			return nil, fmt.Errorf("codec: key %d is %d bytes, want 32", i+1, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("codec: key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %d: %w", i+1, err)
		}
		sum := sha256.Sum256(k)
		c.keys = append(c.keys, key{id: hex.EncodeToString(sum[:6]), aead: aead})
	}
	return c, nil
}

// ParseKeys decodes a comma-separated list of base64 (std or url) 32-byte keys. Errors name the
// key's position, never its value.
func ParseKeys(list string) (*Codec, error) {
	var raw [][]byte
	for i, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(p)
		if err != nil {
			if k, err = base64.URLEncoding.DecodeString(p); err != nil {
				return nil, fmt.Errorf("codec: %s key %d is not base64", EnvKeys, i+1)
			}
		}
		raw = append(raw, k)
	}
	return New(raw...)
}

// GenerateKey returns a new random key in the form CUTOVER_PAYLOAD_KEYS expects.
func GenerateKey() (string, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("codec: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

// FromEnv returns the codec configured by CUTOVER_PAYLOAD_KEYS, or nil when unset.
func FromEnv(getenv func(string) string) (*Codec, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	v := strings.TrimSpace(getenv(EnvKeys))
	if v == "" {
		return nil, nil
	}
	return ParseKeys(v)
}

// DataConverter wraps the default converter with c; a nil codec means the default converter.
func DataConverter(c *Codec) converter.DataConverter {
	if c == nil {
		return converter.GetDefaultDataConverter()
	}
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// Encode encrypts each payload (its whole protobuf, metadata included) with the first key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	k := c.keys[0]
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: marshal payload: %w", err)
		}
		nonce := make([]byte, k.aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{metaEncoding: []byte(encEncrypted), metaKeyID: []byte(k.id)},
			Data:     k.aead.Seal(nonce, nonce, plain, nil),
		}
	}
	return out, nil
}

// Decode decrypts payloads this codec encrypted and passes others through unchanged (histories
// written before the codec was enabled stay readable).
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[metaEncoding]) != encEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[metaKeyID])
		var k *key
		for j := range c.keys {
			if c.keys[j].id == id {
				k = &c.keys[j]
				break
			}
		}
		if k == nil {
			return nil, fmt.Errorf("%w (key id %s)", ErrUnknownKey, id)
		}
		ns := k.aead.NonceSize()
		if len(p.Data) < ns {
			return nil, errors.New("codec: encrypted payload too short")
		}
		plain, err := k.aead.Open(nil, p.Data[:ns], p.Data[ns:], nil)
		if err != nil {
			return nil, errors.New("codec: payload fails authentication")
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return nil, fmt.Errorf("codec: unmarshal payload: %w", err)
		}
		out[i] = &dec
	}
	return out, nil
}
