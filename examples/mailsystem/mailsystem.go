// Package mailsystem generates the legacy mail system (emails.db and auth.db) for the example spec
// beside it, its tests and the workflow end-to-end tests, and appends the writes that keep arriving
// while a migration runs.
package mailsystem

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers "sqlite"
)

// SpecPath is the example spec's path (this package's directory).
func SpecPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "spec.yaml")
}

// Data is a generated mail system.
type Data struct {
	EmailsDB, AuthDB string
	Accounts         int
	Sessions         int
	Emails           int // rows in emails.db
	// Duplicates are emails whose message_id repeats an earlier one (quarantined with 23505).
	Duplicates int
	next       struct{ account, session, email int }
	start      time.Time
}

// Generate writes emails.db and auth.db into dir: accounts, two sessions per account and
// emails spread over 90 days (so over three or four monthly partitions), with mixed timestamp
// forms, JSON headers, a few empty header fields and one duplicated message_id.
func Generate(ctx context.Context, dir string, accounts, emails int) (*Data, error) {
	d := &Data{EmailsDB: filepath.Join(dir, "emails.db"), AuthDB: filepath.Join(dir, "auth.db"),
		start: time.Date(2024, 10, 3, 8, 0, 0, 0, time.UTC)}
	for _, p := range []string{d.EmailsDB, d.AuthDB} {
		_ = os.Remove(p)
	}
	auth, err := open(d.AuthDB)
	if err != nil {
		return nil, err
	}
	defer auth.Close()
	if _, err := auth.ExecContext(ctx, `CREATE TABLE accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT UNIQUE NOT NULL,
		password_hash TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, last_login TEXT);
		CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, account_id INTEGER NOT NULL, token TEXT NOT NULL,
		created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, expires_at TEXT)`); err != nil {
		return nil, fmt.Errorf("create auth.db: %w", err)
	}
	em, err := open(d.EmailsDB)
	if err != nil {
		return nil, err
	}
	defer em.Close()
	if _, err := em.ExecContext(ctx, `CREATE TABLE emails (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL,
		from_address TEXT NOT NULL, to_address TEXT NOT NULL, subject TEXT, body TEXT, html TEXT, headers TEXT,
		raw_email TEXT, size INTEGER, starred INTEGER DEFAULT 0, is_read INTEGER DEFAULT 0, spam_score REAL DEFAULT 0,
		created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)`); err != nil {
		return nil, fmt.Errorf("create emails.db: %w", err)
	}
	if err := d.Append(ctx, accounts, emails, 90*24*time.Hour); err != nil {
		return nil, err
	}
	return d, nil
}

func open(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

var subjects = []string{"Invoice %d for your order", "Meeting notes week %d", "Your package %d has shipped",
	"Password reset request %d", "Quarterly report draft %d", "Lunch on Friday? (%d)"}

// Append writes what the live system keeps writing: accounts (two sessions each) and emails
// whose created_at spreads over span after the previous ones.
func (d *Data) Append(ctx context.Context, accounts, emails int, span time.Duration) error {
	auth, err := open(d.AuthDB)
	if err != nil {
		return err
	}
	defer auth.Close()
	tx, err := auth.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for range accounts {
		d.next.account++
		a := d.next.account
		created := d.start.Add(time.Duration(a) * time.Minute)
		var last any
		if a%3 != 0 {
			last = created.Add(48 * time.Hour).Format("2006-01-02T15:04:05Z")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, email, password_hash, created_at, last_login) VALUES (?, ?, ?, ?, ?)`,
			a, fmt.Sprintf("user%d@mail.example", a), fmt.Sprintf("$2b$12$%052d", a), created.Format("2006-01-02 15:04:05"), last); err != nil {
			return fmt.Errorf("insert account: %w", err)
		}
		for range 2 {
			d.next.session++
			s := d.next.session
			if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, account_id, token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
				s, a, fmt.Sprintf("tok-%08d-%d", s, a), created.Format("2006-01-02 15:04:05"), created.Add(720*time.Hour).Unix()); err != nil {
				return fmt.Errorf("insert session: %w", err)
			}
			d.Sessions++
		}
		d.Accounts++
	}
	if err := tx.Commit(); err != nil {
		return err
	}

	em, err := open(d.EmailsDB)
	if err != nil {
		return err
	}
	defer em.Close()
	etx, err := em.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer etx.Rollback()
	base := d.start
	if d.Emails > 0 {
		base = d.start.Add(90 * 24 * time.Hour)
	}
	for i := range emails {
		d.next.email++
		n := d.next.email
		at := base.Add(span / time.Duration(max(emails, 1)) * time.Duration(i))
		to := fmt.Sprintf("user%d@mail.example", 1+n%max(d.Accounts, 1))
		msgID := fmt.Sprintf("<%d.%d@sender.example>", n, n*7919)
		if n == 42 {
			msgID = "<1.7919@sender.example>" // the same message delivered twice
			d.Duplicates++
		}
		subject := fmt.Sprintf(subjects[n%len(subjects)], n)
		body := fmt.Sprintf("Hello,\n\nplease find the details for item %d below. Payment is due in %d days.\n\n", n, 10+n%20) +
			strings.Repeat("Lorem ipsum dolor sit amet. ", 1+n%12)
		headers := fmt.Sprintf(`{"From": "sender%d@sender.example", "To": %q, "Subject": %q, "X-Spam-Score": "%0.1f"}`, n%50, to, subject, float64(n%30)/10)
		if n%97 == 0 {
			headers = "" // the legacy app stored no headers for some messages
		}
		created := at.Format("2006-01-02 15:04:05")
		if n%4 == 0 {
			created = at.Format(time.RFC3339)
		}
		raw := "From: sender@sender.example\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\n" + body
		if _, err := etx.ExecContext(ctx, `INSERT INTO emails (id, message_id, from_address, to_address, subject, body, html,
			headers, raw_email, size, starred, is_read, spam_score, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			n, msgID, fmt.Sprintf("sender%d@sender.example", n%50), to, subject, body, "<p>"+subject+"</p>", headers, raw,
			len(raw), n%11 == 0, n%2, float64(n%30)/10, created); err != nil {
			return fmt.Errorf("insert email: %w", err)
		}
		d.Emails++
	}
	return etx.Commit()
}
