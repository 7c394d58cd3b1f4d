package imapx

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Appender timeouts: how long a peer may stay silent while we wait for an answer, and how long
// a single write may block.
const (
	appenderRespTimeout  = 5 * time.Minute
	appenderWriteTimeout = 2 * time.Minute
)

// Appender writes messages into one destination account over its own connection. It batches
// messages into MULTIAPPEND commands (RFC 3502), writes literals without waiting for the
// server's go-ahead where LITERAL+ allows, and pipelines: a batch's answer is read while the
// next batch streams. go-imap has none of this, and on a real Dovecot it is the difference
// between ~250 and ~1,500 messages a second per connection.
//
// One goroutine writes (Begin, Add, End); any goroutine may Wait on a batch.
type Appender struct {
	cfg  Config
	conn net.Conn
	tcp  *net.TCPConn // under TLS too: to reset it
	br   *bufio.Reader
	bw   *bufio.Writer

	caps        map[string]bool
	literalPlus bool // LITERAL+: no size limit on non-synchronizing literals
	literalMin  bool // LITERAL-: non-synchronizing up to 4096 bytes
	multi       bool
	uidplus     bool
	appendLimit int64

	tag       int
	lastWrite atomic.Int64 // unix nanos of the last successful write

	mu       sync.Mutex
	pending  map[string]*Batch
	cont     chan string // continuation requests ("+ ...") for the writer
	dead     chan struct{}
	deadErr  error
	stopOnce sync.Once
	stopCtx  func() bool
}

// Batch is one APPEND command with one or more messages.
type Batch struct {
	a       *Appender
	tag     string
	mailbox string
	n       int
	bytes   int64
	ended   bool
	done    chan struct{}
	res     BatchResult
}

// BatchResult is a finished batch.
type BatchResult struct {
	UIDValidity uint32
	UIDs        []uint32 // destination UIDs in message order (APPENDUID); nil without UIDPLUS
	Err         error    // *Error; a rejected batch stored none of its messages
}

// DialAppender opens the appender's connection and logs in. The connection is closed when ctx
// ends or Close is called.
func DialAppender(ctx context.Context, cfg Config, cred Credentials) (*Appender, error) {
	if cred.Tokens != nil && cfg.oauth() {
		return withTokens(ctx, cfg, cred, DialAppender)
	}
	op := "connect " + cfg.describe() + " (append)"
	if err := cfg.Validate(); err != nil {
		return nil, errorf(ClassProtocol, op, "%v", err)
	}
	conn, err := cfg.dialer().DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, classifyDial(op, err)
	}
	raw := conn
	if cfg.Security == "" || cfg.Security == "tls" {
		tc, err := cfg.TLSConfig()
		if err != nil {
			conn.Close()
			return nil, errorf(ClassTLS, op, "%v", err)
		}
		tc.NextProtos = []string{"imap"}
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, classifyDial(op, err)
		}
		conn = tconn
	}
	tcp, _ := raw.(*net.TCPConn)
	a := &Appender{cfg: cfg, conn: conn, tcp: tcp, pending: map[string]*Batch{}, cont: make(chan string, 1), dead: make(chan struct{})}
	a.br = bufio.NewReaderSize(conn, 16<<10)
	a.bw = bufio.NewWriterSize(deadlineWriter{a}, 256<<10)
	a.stopCtx = context.AfterFunc(ctx, func() { a.fail(&Error{Class: ClassConnect, Op: op, Err: ctx.Err()}) })
	_ = conn.SetDeadline(time.Now().Add(cfg.dialer().Timeout))
	if err := a.handshake(cred); err != nil {
		a.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	go a.readLoop()
	return a, nil
}

// deadlineWriter bounds every write to the connection.
type deadlineWriter struct{ a *Appender }

func (w deadlineWriter) Write(p []byte) (int, error) {
	_ = w.a.conn.SetWriteDeadline(time.Now().Add(appenderWriteTimeout))
	n, err := w.a.conn.Write(p)
	if n > 0 {
		w.a.lastWrite.Store(time.Now().UnixNano())
	}
	return n, err
}

// MultiAppend reports whether several messages may share one batch.
func (a *Appender) MultiAppend() bool { return a.multi }

// UIDPlus reports whether batches return destination UIDs.
func (a *Appender) UIDPlus() bool { return a.uidplus }

// AppendLimit is the server's advertised APPENDLIMIT in bytes, 0 if none.
func (a *Appender) AppendLimit() int64 { return a.appendLimit }

// Close drops the connection; unfinished batches fail with ClassConnect.
func (a *Appender) Close() error {
	a.fail(&Error{Class: ClassConnect, Op: "append " + a.cfg.describe(), Err: net.ErrClosed})
	return nil
}

// Err returns why the connection died, or nil while it lives.
func (a *Appender) Err() error {
	select {
	case <-a.dead:
		return a.deadErr
	default:
		return nil
	}
}

func (a *Appender) fail(err error) {
	a.stopOnce.Do(func() {
		if a.stopCtx != nil {
			a.stopCtx()
		}
		a.mu.Lock()
		a.deadErr = err
		close(a.dead)
		pend := a.pending
		a.pending = map[string]*Batch{}
		a.mu.Unlock()
		if len(pend) > 0 && a.tcp != nil {
			// Abandoned APPENDs: reset instead of a graceful close, so the kernel drops what
			// it has not sent yet. Sent later, the end of a command could still be stored
			// after the next attempt has looked for it on the destination and sent it again.
			_ = a.tcp.SetLinger(0)
		}
		_ = a.conn.Close()
		for _, b := range pend {
			b.finish(BatchResult{Err: err})
		}
	})
}

func (a *Appender) nextTag() string {
	a.tag++
	return "A" + strconv.Itoa(a.tag)
}
