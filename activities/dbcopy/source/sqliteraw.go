package source

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cutover/cutover/internal/packed"
)

// rawConn is a read-only SQLite connection on the same SQLite build as the database/sql driver,
// opened without SQLite's per-connection mutex (SQLITE_OPEN_NOMUTEX) and used by one goroutine
// at a time. The driver opens every connection serialized (SQLITE_OPEN_FULLMUTEX, not
// configurable), and in this pure-Go SQLite that mutex is taken and released on every step and
// every column value: over a 1M-row table it was a quarter of the engine's read CPU. Reads are
// the hot path, so they go through here; everything else stays on database/sql.
type rawConn struct {
	tls *libc.TLS
	db  uintptr
}

// rawPool hands out rawConns, opening one per concurrent reader and keeping them for reuse.
type rawPool struct {
	dsn  string
	mu   sync.Mutex
	idle []*rawConn
}

func (p *rawPool) get() (*rawConn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	return openRaw(p.dsn)
}

func (p *rawPool) put(c *rawConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle = append(p.idle, c)
}

func (p *rawPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		c.close()
	}
	p.idle = nil
}

// rawDSN is the URI SQLite opens: read-only, whatever the file's permissions.
func rawDSN(path string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro"
}

func openRaw(dsn string) (*rawConn, error) {
	tls := libc.NewTLS()
	name, err := libc.CString(dsn)
	if err != nil {
		tls.Close()
		return nil, err
	}
	defer libc.Xfree(tls, name)
	pdb := tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer tls.Free(int(unsafe.Sizeof(uintptr(0))))
	rc := sqlite3.Xsqlite3_open_v2(tls, name, pdb,
		sqlite3.SQLITE_OPEN_READONLY|sqlite3.SQLITE_OPEN_NOMUTEX|sqlite3.SQLITE_OPEN_URI, 0)
	c := &rawConn{tls: tls, db: load(pdb)}
	if rc != sqlite3.SQLITE_OK {
		err := c.errorf(rc, "open")
		c.close()
		return nil, err
	}
	// Ride out the legacy application's writes (SQLITE_BUSY), as the driver's connections do.
	sqlite3.Xsqlite3_busy_timeout(tls, c.db, 10000)
	return c, nil
}

// load reads the pointer SQLite stored at p (memory from tls.Alloc, outside Go's heap).
func load(p uintptr) uintptr {
	return *(*uintptr)(unsafe.Pointer(&libc.GoBytes(p, int(unsafe.Sizeof(p)))[0]))
}

func (c *rawConn) close() {
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
		c.db = 0
	}
	c.tls.Close()
}

func (c *rawConn) errorf(rc int32, what string) error {
	msg := ""
	if c.db != 0 {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
	}
	return fmt.Errorf("sqlite %s: %s (code %d)", what, msg, rc)
}

// query runs a SELECT of n columns and hands each row to fn: INTEGER as int64, REAL as
// float64, TEXT as string, BLOB as []byte, NULL as nil (the driver's mapping with no declared-
// type conversions, which the reader turns off anyway). fn must not keep row. With packed, the
// values are carved from arrays shared with other rows (package packed).
func (c *rawConn) query(ctx context.Context, query string, args []any, n int, pack bool, fn func(row []any)) error {
	zSQL, err := libc.CString(query)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, zSQL)
	pstmt := c.tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer c.tls.Free(int(unsafe.Sizeof(uintptr(0))))
	if rc := sqlite3.Xsqlite3_prepare_v2(c.tls, c.db, zSQL, -1, pstmt, 0); rc != sqlite3.SQLITE_OK {
		return c.errorf(rc, "prepare")
	}
	stmt := load(pstmt)
	defer sqlite3.Xsqlite3_finalize(c.tls, stmt)
	for i, a := range args {
		if err := c.bind(stmt, int32(i+1), a); err != nil {
			return err
		}
	}
	row := make([]any, n)
	var arena *packed.Values
	if pack {
		arena = &packed.Values{}
	}
	for k := 0; ; k++ {
		if k&1023 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		switch rc := sqlite3.Xsqlite3_step(c.tls, stmt); rc {
		case sqlite3.SQLITE_DONE:
			return nil
		case sqlite3.SQLITE_ROW:
		default:
			return c.errorf(rc, "step")
		}
		for i := range row {
			col := int32(i)
			switch sqlite3.Xsqlite3_column_type(c.tls, stmt, col) {
			case sqlite3.SQLITE_INTEGER:
				v := sqlite3.Xsqlite3_column_int64(c.tls, stmt, col)
				if arena != nil {
					row[i] = arena.Int64(v)
				} else {
					row[i] = v
				}
			case sqlite3.SQLITE_FLOAT:
				v := sqlite3.Xsqlite3_column_double(c.tls, stmt, col)
				if arena != nil {
					row[i] = arena.Float64(v)
				} else {
					row[i] = v
				}
			case sqlite3.SQLITE_TEXT:
				p := sqlite3.Xsqlite3_column_text(c.tls, stmt, col)
				l := sqlite3.Xsqlite3_column_bytes(c.tls, stmt, col)
				if arena != nil {
					row[i] = arena.String(libc.GoBytes(p, int(l)))
				} else {
					row[i] = string(libc.GoBytes(p, int(l)))
				}
			case sqlite3.SQLITE_BLOB:
				p := sqlite3.Xsqlite3_column_blob(c.tls, stmt, col)
				l := sqlite3.Xsqlite3_column_bytes(c.tls, stmt, col)
				b := make([]byte, l)
				if l > 0 {
					copy(b, libc.GoBytes(p, int(l)))
				}
				row[i] = b
			default:
				row[i] = nil
			}
		}
		fn(row)
	}
}

// bind binds one argument; the values keyset pagination passes back are those query returns.
func (c *rawConn) bind(stmt uintptr, i int32, a any) error {
	var rc int32
	switch v := a.(type) {
	case nil:
		rc = sqlite3.Xsqlite3_bind_null(c.tls, stmt, i)
	case int64:
		rc = sqlite3.Xsqlite3_bind_int64(c.tls, stmt, i, v)
	case int:
		rc = sqlite3.Xsqlite3_bind_int64(c.tls, stmt, i, int64(v))
	case float64:
		rc = sqlite3.Xsqlite3_bind_double(c.tls, stmt, i, v)
	case string:
		rc = c.bindBytes(stmt, i, []byte(v), true)
	case []byte:
		rc = c.bindBytes(stmt, i, v, false)
	default:
		return fmt.Errorf("sqlite bind: unsupported argument type %T", a)
	}
	if rc != sqlite3.SQLITE_OK {
		return c.errorf(rc, "bind")
	}
	return nil
}

// bindBytes binds text or a blob; SQLite copies it (SQLITE_TRANSIENT), so the C copy is freed
// at once.
func (c *rawConn) bindBytes(stmt uintptr, i int32, b []byte, text bool) int32 {
	p := libc.Xmalloc(c.tls, types.Size_t(max(len(b), 1)))
	if p == 0 {
		return sqlite3.SQLITE_NOMEM
	}
	defer libc.Xfree(c.tls, p)
	copy(libc.GoBytes(p, len(b)), b)
	const transient = ^uintptr(0) // SQLITE_TRANSIENT, (void(*)(void*))-1
	if text {
		return sqlite3.Xsqlite3_bind_text(c.tls, stmt, i, p, int32(len(b)), transient)
	}
	return sqlite3.Xsqlite3_bind_blob(c.tls, stmt, i, p, int32(len(b)), transient)
}
