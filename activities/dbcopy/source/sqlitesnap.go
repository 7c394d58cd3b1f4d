package source

import (
	"context"
	"errors"
	"fmt"
)

// Snapshot is a read transaction on a SQLite source: every read through it sees the file as it
// was at its first read, whatever the application commits meanwhile.
type Snapshot struct {
	s *SQLite
	c *rawConn
}

// Read reads a page inside the snapshot (as SQLite.Read).
func (t *Snapshot) Read(ctx context.Context, q Query) ([][]any, error) {
	return t.s.readOn(ctx, t.c, q)
}

// Query runs a SELECT of n columns inside the snapshot and hands each row to fn (fn must not
// keep the row).
func (t *Snapshot) Query(ctx context.Context, query string, args []any, n int, fn func(row []any)) error {
	if err := t.c.query(ctx, query, args, n, false, fn); err != nil {
		return fmt.Errorf("sqlite %s: %w", t.s.path, err)
	}
	return nil
}

// InSnapshot runs fn inside one read transaction. In WAL mode the application's writers go on
// meanwhile; in rollback-journal mode they wait for it (their busy timeout), so fn should be
// short.
func (s *SQLite) InSnapshot(ctx context.Context, fn func(*Snapshot) error) error {
	c, err := s.raw.get()
	if err != nil {
		return fmt.Errorf("sqlite %s: snapshot: %w", s.path, err)
	}
	if err := c.query(ctx, "BEGIN", nil, 0, false, nil); err != nil {
		c.close()
		return fmt.Errorf("sqlite %s: begin snapshot: %w", s.path, err)
	}
	ferr := fn(&Snapshot{s: s, c: c})
	if err := c.query(context.WithoutCancel(ctx), "COMMIT", nil, 0, false, nil); err != nil {
		c.close()
		return errors.Join(ferr, fmt.Errorf("sqlite %s: end snapshot: %w", s.path, err))
	}
	if ferr != nil {
		c.close()
		return ferr
	}
	s.raw.put(c)
	return nil
}
