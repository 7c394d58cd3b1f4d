package onboard

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cutover/cutover/activities/vault"
)

// NamedSecret is one secret of a batch, under the name the operator gave it.
type NamedSecret struct {
	Line   int
	Name   string
	Secret vault.Secret
}

// ParseSecretsCSV reads the batch `cutover vault put --batch` stores: a header naming the
// columns "name" and one or more of "password", "refresh_token", "access_token", "expiry"
// (RFC 3339), then one secret per record. Names are unique; every bad line is reported, by
// number and never with a value, in one *CSVError.
func ParseSecretsCSV(r io.Reader, file string) ([]NamedSecret, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxCSVBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(data) > MaxCSVBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB", file, MaxCSVBytes>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = delimiter(data)
	cerr := &CSVError{File: file}
	header, err := cr.Read()
	if err != nil {
		cerr.add(1, "want a header row: name,password (or refresh_token, access_token, expiry)")
		return nil, cerr
	}
	idx := map[string]int{}
	for i, h := range header {
		k := normalizeHeader(h)
		switch k {
		case "name", "password", "refreshtoken", "accesstoken", "expiry":
		default:
			cerr.add(1, "column %d %q: unknown (want name, password, refresh_token, access_token, expiry)", i+1, h)
			continue
		}
		if _, dup := idx[k]; dup {
			cerr.add(1, "column %q twice", h)
		}
		idx[k] = i
	}
	if _, ok := idx["name"]; !ok {
		cerr.add(1, "no name column")
	}
	if len(cerr.Lines) > 0 {
		return nil, cerr
	}
	get := func(rec []string, k string) string {
		if i, ok := idx[k]; ok {
			return rec[i]
		}
		return ""
	}
	var out []NamedSecret
	seen := map[string]int{}
	eachRecord(cr, cerr, func(line int, rec []string) {
		ns := NamedSecret{Line: line, Name: strings.TrimSpace(get(rec, "name"))}
		ns.Secret = vault.Secret{Password: get(rec, "password"), RefreshToken: get(rec, "refreshtoken"),
			OAuthToken: get(rec, "accesstoken")}
		switch {
		case ns.Name == "":
			cerr.add(line, "no name")
		case seen[ns.Name] > 0:
			cerr.add(line, "name %q also on line %d", ns.Name, seen[ns.Name])
		}
		seen[ns.Name] = line
		if !hasSecret(ns.Secret) {
			cerr.add(line, "no secret: give a password, or an OAuth refresh_token / access_token")
		} else if ns.Secret.Password != "" && (ns.Secret.RefreshToken != "" || ns.Secret.OAuthToken != "") {
			cerr.add(line, "a password and an OAuth token: give one kind")
		}
		if exp := strings.TrimSpace(get(rec, "expiry")); exp != "" {
			t, err := time.Parse(time.RFC3339, exp)
			if err != nil {
				cerr.add(line, "expiry: want an RFC 3339 time (2026-01-02T15:04:05Z)")
			}
			ns.Secret.TokenExpiry = t
		}
		out = append(out, ns)
	})
	if err := cerr.err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		cerr.add(2, "no secrets after the header")
		return nil, cerr
	}
	return out, nil
}
