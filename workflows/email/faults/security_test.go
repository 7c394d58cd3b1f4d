package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cutover/cutover/activities/emailjob"
	"github.com/cutover/cutover/activities/mail"
	"github.com/cutover/cutover/activities/vault"
	"github.com/cutover/cutover/internal/codec"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/testenv"
	email "github.com/cutover/cutover/workflows/email"
	"github.com/cutover/cutover/workflows/email/emailapi"
	"github.com/cutover/cutover/workflows/email/jobspec"
)

// driveToClosed takes a job from start through a presync, the gate, DNS and the final sync to
// closed, and returns its final status.
func driveToClosed(t *testing.T, c client.Client, j *job, queue string) emailapi.Status {
	t.Helper()
	id := emailapi.WorkflowID(j.id)
	ctx := context.Background()
	j.start(c, queue, j.spec(2), email.Tuning{})
	awaitStatus(t, c, id, "initial sync done", 3*time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseDeltaSync })
	j.deliver("pre", 5)
	if err := c.SignalWorkflow(ctx, id, "", emailapi.PresyncNow, emailapi.Request{By: "sec-ops"}); err != nil {
		t.Fatal(err)
	}
	awaitStatus(t, c, id, "presync done", 3*time.Minute, func(s emailapi.Status) bool { return s.Presyncs == 1 && s.CurrentPass == nil })
	command(t, c, id, emailapi.Approve, emailapi.Request{By: "sec-lead"}, time.Minute)
	now := time.Now()
	command(t, c, id, emailapi.SetCutoverTime, emailapi.Request{By: "sec-ops", At: &now}, time.Minute)
	awaitStatus(t, c, id, "cutover_ready", time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseCutoverReady })
	j.deliver("final", 5)
	command(t, c, id, emailapi.DNSCutoverConfirmed, emailapi.Request{By: "sec-lead"}, time.Minute)
	awaitStatus(t, c, id, "verified", 3*time.Minute, func(s emailapi.Status) bool { return s.Phase == model.PhaseVerified })
	if err := c.SignalWorkflow(ctx, id, "", emailapi.Close, emailapi.Request{By: "sec-lead"}); err != nil {
		t.Fatal(err)
	}
	return result(t, c, id, time.Minute)
}

// payload is one payload of an event; visible ones are meant for operators in clear (search
// attributes the server indexes, the UI's summaries and details) and are only searched.
type payload struct {
	p       *commonpb.Payload
	visible bool
}

// payloads collects every Payload anywhere in a proto message.
func payloads(m protoreflect.Message, visible bool, out *[]payload) {
	if p, ok := m.Interface().(*commonpb.Payload); ok {
		*out = append(*out, payload{p, visible})
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		vis := visible || fd.Name() == "search_attributes" || fd.Name() == "user_metadata"
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				payloads(v.List().Get(i).Message(), vis, out)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				payloads(mv.Message(), vis, out)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			payloads(v.Message(), vis, out)
		}
		return true
	})
}

// leak reports which secrets occur in b.
func leak(b []byte, secrets []string) []string {
	var found []string
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			found = append(found, s[:min(len(s), 8)]+"…")
		}
	}
	return found
}

// scanHistories reads the history of every workflow that ran on the task queue with a client
// that has no codec (what the Temporal server and its database hold), requires every payload
// to be ciphertext, decrypts each with the codec, and searches the raw events and the
// decrypted payloads for the secrets. It returns the workflows and payloads scanned.
func scanHistories(t *testing.T, raw client.Client, pc *codec.Codec, queue string, secrets []string, mustSee string) (workflows, scanned, visible int) {
	t.Helper()
	ctx := context.Background()
	var token []byte
	sawMarker := false
	for {
		resp, err := raw.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("TaskQueue = '%s'", queue), NextPageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetExecutions() {
			workflows++
			it := raw.GetWorkflowHistory(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), false, 0)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				b, _ := proto.Marshal(ev)
				j, _ := protojson.Marshal(ev)
				if l := append(leak(b, secrets), leak(j, secrets)...); len(l) > 0 {
					t.Errorf("%s event %d %s holds a secret in clear: %v", e.GetExecution().GetWorkflowId(), ev.GetEventId(), ev.GetEventType(), l)
				}
				var ps []payload
				payloads(ev.ProtoReflect(), false, &ps)
				for _, vp := range ps {
					scanned++
					p := vp.p
					if vp.visible {
						visible++
						continue // in clear by design; searched with the raw event above
					}
					if enc := string(p.GetMetadata()["encoding"]); enc != "binary/encrypted" {
						t.Errorf("%s event %d %s: a %q payload, want ciphertext", e.GetExecution().GetWorkflowId(), ev.GetEventId(), ev.GetEventType(), enc)
						continue
					}
					dec, err := pc.Decode([]*commonpb.Payload{p})
					if err != nil {
						t.Fatalf("decode a payload: %v", err)
					}
					data := dec[0].GetData()
					if l := leak(data, secrets); len(l) > 0 {
						t.Errorf("%s event %d %s: a decrypted payload holds a secret: %v", e.GetExecution().GetWorkflowId(), ev.GetEventId(), ev.GetEventType(), l)
					}
					sawMarker = sawMarker || bytes.Contains(data, []byte(mustSee))
				}
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	if !sawMarker {
		t.Errorf("no decrypted payload holds %q: the scan did not read the inputs it should", mustSee)
	}
	return workflows, scanned, visible
}

// scanDatabase searches every row of every control table (the vault's ciphertext included).
func scanDatabase(t *testing.T, j *job, secrets []string) (tables int) {
	t.Helper()
	ctx := context.Background()
	rows, err := j.db.Pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		var dump *string
		if err := j.db.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT string_agg(row_to_json(t)::text, E'\n') FROM %q t`, n)).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		if dump != nil {
			if l := leak([]byte(*dump), secrets); len(l) > 0 {
				t.Errorf("table %s holds a secret in clear: %v", n, l)
			}
		}
	}
	return len(names)
}

// TestSecurityNoSecretInHistoryLogsErrorsOrReports runs two jobs on a worker process with
// the payload codec on and debug logging: one through every phase to closed (reports
// written), and one whose mailbox's stored password is wrong (it fails preflight with an
// authentication error, then is aborted). No source or destination password, wrong password,
// vault key or payload key may appear in any event of any of their workflows (raw, and every
// payload decrypted), the worker's log, the control database, the errors or the reports; and
// every payload the server holds is ciphertext.
func TestSecurityNoSecretInHistoryLogsErrorsOrReports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two jobs on the real stack")
	}
	t.Parallel()
	seed := testenv.Seeds(t, 1)[0]
	users := []string{"sa", "sb", "sc"}
	srv := startServers(t, users)
	temporal := testenv.SharedTemporal(t)
	payloadKey, err := codec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := codec.ParseKeys(payloadKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{HostPort: temporal.Address(), Namespace: temporal.Namespace(), DataConverter: codec.DataConverter(pc)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := client.Dial(client.Options{HostPort: temporal.Address(), Namespace: temporal.Namespace()}) // what the server holds
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	base := 820_000_000 + time.Now().Unix()%1_000_000*10
	good := newJob(t, srv, base, users[:2], rand.New(rand.NewPCG(seed, 1)))
	good.deliver("init", 20)
	queue := fmt.Sprintf("emailsec-%d", time.Now().UnixNano())
	w := startWorker(t, temporal.Address(), good.dbURL, queue, good.workerEnv(codec.EnvKeys+"="+payloadKey,
		"CUTOVER_LOG_LEVEL=debug", "CUTOVER_LOG_FORMAT=json")...)
	st := driveToClosed(t, c, good, queue)
	if st.Phase != model.PhaseClosed {
		t.Fatalf("st.Phase: want model.PhaseClosed; job ended in %s, verify %+v", st.Phase, st.Verify)
	}
	if st.Verify == nil {
		t.Fatalf("st.Verify is nil; job ended in %s, verify %+v", st.Phase, st.Verify)
	}
	if !st.Verify.OK {
		t.Fatalf("st.Verify.OK is false; job ended in %s, verify %+v", st.Phase, st.Verify)
	}
	good.checkDestination(t)

	// A second job in the same control database: its mailbox's password in the vault is wrong.
	wrong := secret("wrongpw")
	bad := &job{t: t, srv: srv, id: base + 1, dbURL: good.dbURL, db: good.db, vaultKy: good.vaultKy, refs: map[string][2]string{},
		rnd: good.rnd, date: good.date, destVia: srv.dst.Addr(), boxes: []*mailbox{{user: "sc"}}}
	keys, _ := vault.ParseKeys(good.vaultKy)
	v, _ := vault.New(good.db.Store, keys)
	ctx := context.Background()
	sref, err := v.Put(ctx, vault.Secret{Password: wrong}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dref, err := v.Put(ctx, vault.Secret{Password: srv.dstPW["sc"]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad.refs["sc"] = [2]string{sref, dref}
	bad.deliver("init", 3)
	bad.start(c, queue, bad.spec(1), email.Tuning{})
	failed := awaitStatus(t, c, emailapi.WorkflowID(bad.id), "authentication failure", 2*time.Minute, func(s emailapi.Status) bool {
		return s.Gate == model.GateBlocked && s.LastError != "" || s.State == "failed"
	})
	if !strings.Contains(failed.LastError, "AuthFailed") {
		t.Errorf("the failing job's error does not say why: %q", failed.LastError)
	}
	t.Logf("the failing job's error: %s", failed.LastError)
	if err := c.SignalWorkflow(ctx, emailapi.WorkflowID(bad.id), "", emailapi.Abort, emailapi.Request{By: "sec-ops", Note: "wrong password"}); err != nil {
		t.Fatal(err)
	}
	_ = c.GetWorkflow(ctx, emailapi.WorkflowID(bad.id), "").Get(ctx, nil)

	secrets := []string{good.vaultKy, payloadKey, wrong}
	for _, u := range users {
		secrets = append(secrets, srv.srcPW[u], srv.dstPW[u])
	}
	workflows, scanned, visible := scanHistories(t, raw, pc, queue, secrets, good.refs["sa"][0])
	logs := w.Log()
	if l := leak([]byte(logs), secrets); len(l) > 0 {
		t.Errorf("the worker's log holds secrets: %v", l)
	}
	if !strings.Contains(logs, `"level":"DEBUG"`) || !strings.Contains(logs, "AUTHENTICATIONFAILED") {
		t.Errorf("the worker's log lacks debug lines or the authentication failure: the scan proves little")
	}
	tables := scanDatabase(t, good, secrets)
	var reports, reportBytes int
	_ = filepath.Walk(w.reports, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		reports++
		reportBytes += len(b)
		if l := leak(b, secrets); len(l) > 0 {
			t.Errorf("report %s holds secrets: %v", filepath.Base(p), l)
		}
		return nil
	})
	if reports == 0 {
		t.Error("no report was written: the scan proves nothing")
	}
	t.Logf("no secret in %d workflow histories (%d payloads: %d ciphertext, decrypted and searched; %d search attributes and summaries, in clear by design, searched), %d KB of worker log, %d control tables, %d reports (%d KB), the errors",
		workflows, scanned, scanned-visible, visible, len(logs)>>10, tables, reports, reportBytes>>10)
	// The two jobs and their waves (each wave holds its mailboxes' passes as activities).
	if workflows < 6 {
		t.Errorf("workflows: want >= 6; only %d workflows and %d payloads scanned", workflows, scanned)
	} else if scanned < 100 {
		t.Errorf("scanned: want >= 100; only %d workflows and %d payloads scanned", workflows, scanned)
	}
}

// TestSecurityTLSVerifiedByDefault: a job spec that says nothing about certificates gets TLS
// with verification. Against a Dovecot whose certificate a private CA signed, the preflight
// activity is refused with a non-retryable TLSFailed error naming the certificate problem;
// with the CA given as ca_file it logs in; insecure_skip_verify, the explicit flag for tests,
// also gets in (and is never set by default).
func TestSecurityTLSVerifiedByDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Dovecot and PostgreSQL")
	}
	t.Parallel()
	srv := startServers(t, []string{"ta"}, testenv.WithTLS())
	j := newJob(t, srv, 830_000_000+time.Now().Unix()%1_000_000, []string{"ta"}, rand.New(rand.NewPCG(1, 2)))
	j.deliver("init", 3)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.src.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, _ := vault.ParseKeys(j.vaultKy)
	v, err := vault.New(j.db.Store, keys)
	if err != nil {
		t.Fatal(err)
	}
	acts := &mail.Activities{DB: j.db, Vault: v}
	ctx := context.Background()
	refs := j.refs["ta"]
	for _, tc := range []struct {
		name, source string
		ok           bool
	}{
		{"default", fmt.Sprintf(`{host: %q}`, srv.src.TLSAddr()), false},
		{"starttls default", fmt.Sprintf(`{host: %q, security: starttls}`, srv.src.Addr()), false},
		{"ca_file", fmt.Sprintf(`{host: %q, ca_file: %q}`, srv.src.TLSAddr(), ca), true},
		{"starttls ca_file", fmt.Sprintf(`{host: %q, security: starttls, ca_file: %q}`, srv.src.Addr(), ca), true},
		{"insecure flag", fmt.Sprintf(`{host: %q, insecure_skip_verify: true}`, srv.src.TLSAddr()), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := jobspec.Parse(fmt.Appendf(nil, `job_id: %d
tenant_id: 1
domain: fault.example
source: %s
destination: {host: %q, security: plain}
mailboxes: [{email: ta@fault.example, user: ta, credentials_ref: %s, dest_user: ta, dest_credentials_ref: %s}]
`, j.id, tc.source, srv.dst.Addr(), refs[0], refs[1]))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := emailjob.Register(ctx, j.db, spec); err != nil {
				t.Fatal(err)
			}
			mbs, err := j.db.ListMailboxes(ctx, j.id)
			if err != nil {
				t.Fatalf("err: want nil; mailboxes: %v %v", mbs, err)
			}
			if len(mbs) != 1 {
				t.Fatalf("len(mbs) = %v, want 1; mailboxes: %v %v", len(mbs), mbs, err)
			}
			ms := emailjob.MailboxSpec(spec, j.id, mbs[0].ID, spec.Mailboxes[0])
			if ms.Source.InsecureSkipVerify != strings.Contains(tc.source, "insecure") {
				t.Fatalf("insecure_skip_verify %v from %s", ms.Source.InsecureSkipVerify, tc.source)
			}
			rep, err := acts.PreflightMailbox(ctx, ms)
			if tc.ok {
				if err != nil {
					t.Fatalf("err: want nil; preflight: %v (%d folders)", err, len(rep.Folders))
				}
				if len(rep.Folders) == 0 {
					t.Fatalf("len(rep.Folders): want != 0; preflight: %v (%d folders)", err, len(rep.Folders))
				}
				return
			}
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || ae.Type() != emailapi.ErrTypeTLS || !ae.NonRetryable() || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("preflight against an untrusted certificate: %v, want a non-retryable %s error about the certificate", err, emailapi.ErrTypeTLS)
			}
			t.Logf("refused: %v", ae.Message())
		})
	}
}

// readmePrivileges returns the statements of the README's "Database privileges" block for a
// database and a role: the test grants the README's text itself, so the two cannot drift apart.
func readmePrivileges(t *testing.T, database, role string) []string {
	t.Helper()
	blocks := testenv.READMEBlocks(t, "### Database privileges", "sql")
	if len(blocks) != 1 {
		t.Fatalf("README.md: %d sql blocks in the database privileges, want 1", len(blocks))
	}
	var out []string
	for _, stmt := range strings.Split(blocks[0], ";") {
		if stmt = strings.TrimSpace(stmt); stmt != "" {
			stmt = strings.ReplaceAll(stmt, "DATABASE cutover ", "DATABASE "+database+" ")
			out = append(out, strings.ReplaceAll(stmt, "cutover_worker", role))
		}
	}
	if len(out) < 4 {
		t.Fatalf("README.md privileges: %q", out)
	}
	return out
}

// TestSecurityLeastPrivilegeDatabaseRole creates a role with only the privileges the README
// lists (which take CONNECT and TEMPORARY on the database away from PUBLIC), runs the worker
// as that role and takes a job from preflight to closed, reports included. The role cannot
// create, alter, drop or truncate anything.
func TestSecurityLeastPrivilegeDatabaseRole(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job on the real stack")
	}
	t.Parallel()
	users := []string{"pa", "pb"}
	srv := startServers(t, users)
	temporal := testenv.SharedTemporal(t)
	c := temporal.Client(t)
	j := newJob(t, srv, 840_000_000+time.Now().Unix()%1_000_000, users, rand.New(rand.NewPCG(3, 4))) // schema applied as admin
	j.deliver("init", 10)
	ctx := context.Background()
	u, err := url.Parse(j.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()
	role := fmt.Sprintf("cutover_worker_%d", time.Now().UnixNano())
	if _, err := j.db.Pool.Exec(ctx, `CREATE ROLE `+role+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = j.db.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
		_, _ = j.db.Pool.Exec(ctx, `DROP OWNED BY `+role)
		if _, err := j.db.Pool.Exec(ctx, `DROP ROLE `+role); err != nil {
			t.Logf("drop role %s: %v", role, err)
		}
	})
	for _, q := range readmePrivileges(t, db, role) {
		if _, err := j.db.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u.User = url.User(role)
	roleURL := u.String()

	// What the role must not do.
	conn, err := pgx.Connect(ctx, roleURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`CREATE TABLE probe (id int)`, `CREATE TEMP TABLE probe (id int)`, `ALTER TABLE migration_jobs ADD COLUMN x int`,
		`DROP TABLE mail_messages`, `TRUNCATE migration_runs`, `CREATE SCHEMA probe`} {
		if _, err := conn.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "denied") && !strings.Contains(err.Error(), "must be owner") {
			t.Errorf("the worker's role may %q: %v", q, err)
		}
	}
	conn.Close(ctx)

	queue := fmt.Sprintf("emailpriv-%d", time.Now().UnixNano())
	w := startWorker(t, temporal.Address(), roleURL, queue, j.workerEnv()...)
	st := driveToClosed(t, c, j, queue)
	if st.Phase != model.PhaseClosed {
		t.Fatalf("st.Phase: want model.PhaseClosed; job ended in %s, verify %+v", st.Phase, st.Verify)
	}
	if st.Verify == nil {
		t.Fatalf("st.Verify is nil; job ended in %s, verify %+v", st.Phase, st.Verify)
	}
	if !st.Verify.OK {
		t.Fatalf("st.Verify.OK is false; job ended in %s, verify %+v", st.Phase, st.Verify)
	}
	j.checkDestination(t)
	if strings.Contains(w.Log(), "permission denied") {
		t.Errorf("the worker was refused something:\n%s", w.LogTail(4000))
	}
	var runs int
	if err := j.db.Pool.QueryRow(ctx, `SELECT count(*) FROM migration_runs WHERE job_id = $1`, j.id).Scan(&runs); err != nil {
		t.Errorf("err: want nil; no run recorded by the worker's role: %d, %v", runs, err)
	} else if runs == 0 {
		t.Errorf("runs: want != 0; no run recorded by the worker's role: %d, %v", runs, err)
	}
}
