package cli_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/testing/testenv"
	"github.com/cutover/cutover/starter/cli"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), args, &cli.Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] },
	})
	return result{code, out.String(), errb.String()}
}

func TestVersionAndUsage(t *testing.T) {
	r := run(t, nil, "", "version")
	if r.code != cli.ExitOK || !regexp.MustCompile(`^cutover \S+ \(go\S+, schema \d+\)\n$`).MatchString(r.stdout) {
		t.Fatalf("version = %+v", r)
	}
	r = run(t, nil, "", "frobnicate")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, `unknown command "frobnicate"`) || !strings.Contains(r.stderr, "vault put") {
		t.Fatalf("unknown command = %+v", r)
	}
	r = run(t, nil, "", "help")
	if r.code != cli.ExitOK || !strings.Contains(r.stderr, "schema apply") {
		t.Fatalf("help = %+v", r)
	}
	r = run(t, nil, "", "version", "extra")
	if r.code != cli.ExitUsage {
		t.Fatalf("stray argument accepted: %+v", r)
	}
}

func TestSchemaApplyAndVaultPut(t *testing.T) {
	key, err := vault.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": testenv.NewDatabase(t), vault.EnvKeys: key}

	r := run(t, env, "", "schema", "apply")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "applied") {
		t.Fatalf("schema apply = %+v", r)
	}
	r = run(t, env, "", "schema", "apply")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "up to date") {
		t.Fatalf("second schema apply = %+v", r)
	}

	const secret = "correct horse battery staple"
	r = run(t, env, secret+"\n", "vault", "put", "--ref-only")
	if r.code != cli.ExitOK || !regexp.MustCompile(`^[0-9a-f-]{36}\n$`).MatchString(r.stdout) {
		t.Fatalf("vault put --ref-only = %+v", r)
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Fatal("vault put echoed the secret")
	}
	r = run(t, env, `{"access_token":"at-123","refresh_token":"rt-456","expiry":"2030-01-01T00:00:00Z"}`,
		"vault", "put", "--type", "oauth")
	if r.code != cli.ExitOK || !strings.HasPrefix(r.stdout, "credentials_ref: ") || strings.Contains(r.stdout, "at-123") {
		t.Fatalf("vault put --type oauth = %+v", r)
	}

	r = run(t, env, "", "vault", "put")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "no password on stdin") {
		t.Fatalf("empty stdin = %+v", r)
	}
	r = run(t, map[string]string{"DATABASE_URL": env["DATABASE_URL"]}, secret, "vault", "put")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, vault.EnvKeys) || strings.Contains(r.stderr, secret) {
		t.Fatalf("no key = %+v", r)
	}
}
