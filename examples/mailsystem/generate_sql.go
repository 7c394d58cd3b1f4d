package mailsystem

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Sizes of a generated mail system.
type Sizes struct {
	Accounts, Sessions, Emails int
	// BodyBytes, when set, pads each email's body and html with that many bytes of random hex
	// words (compressing about as real mail does; every word new, the full-text index's worst
	// case) and appends the body to raw_email: multi-KB rows, where the copy's limit is bytes
	// rather than rows.
	BodyBytes int
}

// Seed002 is the legacy mail system's production size: ~250K accounts, ~261K emails, and 100K
// sessions.
var Seed002 = Sizes{Accounts: 250_000, Sessions: 100_000, Emails: 261_000}

// GenerateSized writes emails.db and auth.db of the given sizes into dir in bulk (one
// INSERT … SELECT per table, so millions of rows take seconds): the same schema and value
// forms as Generate, without its hand-placed oddities (every message_id is unique).
func GenerateSized(ctx context.Context, dir string, n Sizes) (*Data, error) {
	d := &Data{EmailsDB: filepath.Join(dir, "emails.db"), AuthDB: filepath.Join(dir, "auth.db")}
	for _, p := range []string{d.EmailsDB, d.AuthDB} {
		_ = os.Remove(p)
	}
	start := int64(1727942400) // 2024-10-03T08:00:00Z
	auth := fmt.Sprintf(`CREATE TABLE accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT UNIQUE NOT NULL,
			password_hash TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, last_login TEXT);
		CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, account_id INTEGER NOT NULL, token TEXT NOT NULL,
			created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, expires_at TEXT);
		WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %[1]d)
		INSERT INTO accounts SELECT i, 'user' || i || '@mail.example', '$2b$12$' || printf('%%052d', i),
			datetime(%[3]d + i * 10, 'unixepoch'),
			CASE WHEN i %% 3 <> 0 THEN strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', %[3]d + i * 10 + 172800, 'unixepoch') END FROM s;
		WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %[2]d)
		INSERT INTO sessions SELECT i, 1 + (i * 7) %% %[1]d, printf('tok-%%08d-%%d', i, 1 + (i * 7) %% %[1]d),
			datetime(%[3]d + i * 20, 'unixepoch'), %[3]d + i * 20 + 2592000 FROM s;`, n.Accounts, n.Sessions, start)
	span := int64(90 * 24 * 3600)
	emails := fmt.Sprintf(`CREATE TABLE emails (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL,
			from_address TEXT NOT NULL, to_address TEXT NOT NULL, subject TEXT, body TEXT, html TEXT, headers TEXT,
			raw_email TEXT, size INTEGER, starred INTEGER DEFAULT 0, is_read INTEGER DEFAULT 0, spam_score REAL DEFAULT 0,
			created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
		WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %[1]d)
		INSERT INTO emails SELECT i, '<' || i || '.' || (i * 7919) || '@sender.example>', 'sender' || (i %% 50) || '@sender.example',
			'user' || (1 + i %% %[2]d) || '@mail.example', 'Invoice ' || i || ' for your order',
			'Hello, please find the details for item ' || i || ' below. Payment is due in ' || (10 + i %% 20) || ' days. ' ||
				substr('Lorem ipsum dolor sit amet. Lorem ipsum dolor sit amet. Lorem ipsum dolor sit amet. ', 1, 28 * (1 + i %% 3)),
			'<p>Invoice ' || i || '</p>',
			CASE WHEN i %% 97 = 0 THEN '' ELSE '{"From": "sender' || (i %% 50) || '@sender.example", "X-Spam-Score": "' || ((i %% 30) / 10.0) || '"}' END,
			'From: sender@sender.example' || char(13, 10) || 'Subject: Invoice ' || i, 200 + i %% 800,
			i %% 11 = 0, i %% 2, (i %% 30) / 10.0,
			CASE WHEN i %% 4 = 0 THEN strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', %[3]d + i * %[4]d / %[1]d, 'unixepoch')
				ELSE datetime(%[3]d + i * %[4]d / %[1]d, 'unixepoch') END FROM s;`, n.Emails, max(n.Accounts, 1), start, span)
	if n.BodyBytes > 0 {
		pad := max(n.BodyBytes/2, 1) // hex doubles randomblob's bytes
		emails += fmt.Sprintf(`
		UPDATE emails SET body = body || ' ' || replace(hex(randomblob(%[1]d)), 'A', ' '),
			html = '<p>' || replace(hex(randomblob(%[1]d)), 'A', ' ') || '</p>';
		UPDATE emails SET raw_email = raw_email || char(13, 10, 13, 10) || body, size = length(raw_email) + 4 + length(body);`, pad)
	}
	for _, f := range []struct{ path, ddl string }{{d.AuthDB, auth}, {d.EmailsDB, emails}} {
		db, err := sql.Open("sqlite", "file:"+f.path+"?_pragma=journal_mode(wal)&_pragma=synchronous(off)")
		if err != nil {
			return nil, err
		}
		_, err = db.ExecContext(ctx, f.ddl)
		db.Close()
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", filepath.Base(f.path), err)
		}
	}
	d.Accounts, d.Sessions, d.Emails = n.Accounts, n.Sessions, n.Emails
	d.next.account, d.next.session, d.next.email = n.Accounts, n.Sessions, n.Emails
	d.start = time.Unix(start, 0).UTC()
	return d, nil
}

// ChangeSizes is how many rows of each table changing about frac of n takes, a third each
// updated, deleted and inserted.
func ChangeSizes(n Sizes, frac float64) Sizes {
	third := func(n int) int { return max(1, int(float64(n)*frac/3)) }
	return Sizes{Accounts: third(n.Accounts), Sessions: third(n.Sessions), Emails: third(n.Emails)}
}

// ChangeRows changes the data as the live application does: per.Accounts accounts,
// per.Sessions sessions and per.Emails emails each UPDATEd in place (flags, password hashes,
// session expiry; no watermark), DELETEd (the retention purge: the oldest emails, accounts with
// their sessions) and INSERTed. It returns how many rows it changed.
func (d *Data) ChangeRows(ctx context.Context, per Sizes) (int, error) {
	a, s, e := per.Accounts, per.Sessions, per.Emails
	auth := fmt.Sprintf(`
		UPDATE accounts SET password_hash = '$2b$12$rehashed' || id, last_login = '2025-01-05T09:00:00Z'
			WHERE id IN (SELECT id FROM accounts WHERE id %% 97 = 1 ORDER BY id LIMIT %[1]d);
		UPDATE sessions SET expires_at = expires_at + 86400 WHERE id IN (SELECT id FROM sessions WHERE id %% 89 = 2 ORDER BY id LIMIT %[2]d);
		DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE id %% 83 = 3 ORDER BY id LIMIT %[2]d);
		DELETE FROM sessions WHERE account_id IN (SELECT id FROM accounts WHERE id %% 79 = 4 ORDER BY id LIMIT %[1]d);
		DELETE FROM accounts WHERE id IN (SELECT id FROM accounts WHERE id %% 79 = 4 ORDER BY id LIMIT %[1]d);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %[1]d)
		INSERT INTO accounts (id, email, password_hash, created_at) SELECT %[3]d + i, 'new' || (%[3]d + i) || '@mail.example',
			'$2b$12$new', '2025-01-05 09:00:00' FROM n;
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %[2]d)
		INSERT INTO sessions (id, account_id, token, created_at, expires_at) SELECT %[4]d + i, %[3]d + 1 + (i %% %[1]d),
			'tok-new-' || i, '2025-01-05 09:00:00', 1738660000 FROM n;`, a, s, d.next.account, d.next.session)
	emails := fmt.Sprintf(`
		UPDATE emails SET is_read = 1 - is_read, starred = 1 - starred WHERE id IN (SELECT id FROM emails WHERE id %% 73 = 5 ORDER BY id LIMIT %[1]d);
		DELETE FROM emails WHERE id IN (SELECT id FROM emails ORDER BY id LIMIT %[1]d);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %[1]d)
		INSERT INTO emails (id, message_id, from_address, to_address, subject, body, size, created_at)
			SELECT %[2]d + i, '<new' || (%[2]d + i) || '@sender.example>', 'sender@sender.example', 'user1@mail.example',
			'New ' || i, 'A new message.', 100, '2025-01-05 09:00:00' FROM n;`, e, d.next.email)
	for _, f := range []struct{ path, sql string }{{d.AuthDB, auth}, {d.EmailsDB, emails}} {
		db, err := open(f.path)
		if err != nil {
			return 0, err
		}
		_, err = db.ExecContext(ctx, "BEGIN; "+f.sql+" COMMIT;")
		db.Close()
		if err != nil {
			return 0, fmt.Errorf("change %s: %w", filepath.Base(f.path), err)
		}
	}
	d.next.account += a
	d.next.session += s
	d.next.email += e
	return 3*a + 3*s + 3*e, nil
}
