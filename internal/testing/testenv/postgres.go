package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is the server used when CUTOVER_TEST_PG is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres"

// NewDatabase creates an empty, uniquely named database on the test
// PostgreSQL server (env CUTOVER_TEST_PG, a postgres:// URL; default
// DefaultPostgresURL), drops it when the test ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := postgresBaseURL()
	baseURL, err := url.Parse(base)
	if err != nil || (baseURL.Scheme != "postgres" && baseURL.Scheme != "postgresql") {
		t.Fatalf("CUTOVER_TEST_PG must be a postgres:// URL (parse error: %v)", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	Require(t, "PostgreSQL at "+baseURL.Redacted(), err)
	defer conn.Close(context.Background())

	name := "cutover_t_" + randomHex(8)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(base, name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})

	dbURL := *baseURL
	dbURL.Path = "/" + name
	dbURL.RawPath = ""
	return dbURL.String()
}

func postgresBaseURL() string {
	if u := os.Getenv("CUTOVER_TEST_PG"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// dropDatabase uses its own connection: the one NewDatabase used is long
// closed by the time cleanups run.
func dropDatabase(base, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	// FORCE terminates connections the test (or a leaked pool) left open.
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
