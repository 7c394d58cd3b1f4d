package imapx

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cutover/cutover/activities/mail/folders"
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

// Begin starts a batch for mailbox (UTF-8 name). Call Add for each message, then End.
func (a *Appender) Begin(mailbox string) (*Batch, error) {
	if err := a.Err(); err != nil {
		return nil, err
	}
	b := &Batch{a: a, tag: a.nextTag(), mailbox: mailbox, done: make(chan struct{})}
	a.mu.Lock()
	a.pending[b.tag] = b
	a.mu.Unlock()
	a.bw.WriteString(b.tag + " APPEND " + quoteMailbox(mailbox))
	return b, nil
}

// Len is the number of messages added so far; Bytes their total size.
func (b *Batch) Len() int     { return b.n }
func (b *Batch) Bytes() int64 { return b.bytes }

// ErrBatchDone means the server finished the batch (rejected it) before all messages were sent.
var ErrBatchDone = errors.New("append batch already answered")

// Add streams one message of exactly size bytes from r. On ErrBatchDone the server has already
// refused the batch (Wait tells why) and nothing of r was read; on other errors the
// connection is unusable.
func (b *Batch) Add(flags []string, date time.Time, size int64, r io.Reader) error {
	a := b.a
	if b.n > 0 && !a.multi {
		return errors.New("server lacks MULTIAPPEND: one message per batch")
	}
	var sb strings.Builder
	sb.WriteString(" (")
	first := true
	for _, f := range flags {
		if !validFlag(f) {
			continue
		}
		if !first {
			sb.WriteByte(' ')
		}
		sb.WriteString(f)
		first = false
	}
	sb.WriteByte(')')
	if !date.IsZero() {
		sb.WriteString(` "` + date.Format("02-Jan-2006 15:04:05 -0700") + `"`)
	}
	sync := !(a.literalPlus || (a.literalMin && size <= 4096))
	if sync {
		fmt.Fprintf(&sb, " {%d}\r\n", size)
	} else {
		fmt.Fprintf(&sb, " {%d+}\r\n", size)
	}
	a.bw.WriteString(sb.String())
	if sync {
		if err := a.bw.Flush(); err != nil {
			a.fail(Classify("append "+b.mailbox, err, ClassConnect))
			return a.Err()
		}
		select {
		case <-a.cont:
		case <-b.done:
			b.ended = true
			return ErrBatchDone
		case <-a.dead:
			return a.deadErr
		}
	}
	n, err := io.CopyN(a.bw, r, size)
	if err != nil {
		// The literal is short: the connection cannot be resynchronised.
		werr := Classify("append "+b.mailbox, err, ClassFetch)
		a.fail(&Error{Class: ClassConnect, Op: "append " + b.mailbox, Err: fmt.Errorf("message stream ended after %d of %d bytes: %w", n, size, err)})
		return werr
	}
	b.n++
	b.bytes += size
	return nil
}

// End finishes the command; the answer arrives asynchronously (Wait).
func (b *Batch) End() error {
	if b.ended {
		return nil
	}
	b.ended = true
	a := b.a
	if b.n == 0 {
		// An APPEND without a message is a syntax error: cancel locally.
		a.mu.Lock()
		delete(a.pending, b.tag)
		a.mu.Unlock()
		a.bw.Reset(deadlineWriter{a}) // nothing was flushed for this batch
		b.finish(BatchResult{})
		return nil
	}
	a.bw.WriteString("\r\n")
	if err := a.bw.Flush(); err != nil {
		a.fail(Classify("append "+b.mailbox, err, ClassConnect))
		return a.Err()
	}
	return nil
}

// Wait returns the batch's result.
func (b *Batch) Wait(ctx context.Context) BatchResult {
	select {
	case <-b.done:
		return b.res
	case <-ctx.Done():
		return BatchResult{Err: &Error{Class: ClassConnect, Op: "append " + b.mailbox, Err: ctx.Err()}}
	}
}

// Done is closed when the result is known.
func (b *Batch) Done() <-chan struct{} { return b.done }

func (b *Batch) finish(r BatchResult) {
	select {
	case <-b.done:
	default:
		b.res = r
		close(b.done)
	}
}

// readLoop dispatches the server's answers until the connection dies.
func (a *Appender) readLoop() {
	for {
		_ = a.conn.SetReadDeadline(time.Now().Add(appenderRespTimeout))
		line, err := a.readLine()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				a.mu.Lock()
				idle := len(a.pending) == 0
				a.mu.Unlock()
				if idle || time.Since(time.Unix(0, a.lastWrite.Load())) < appenderRespTimeout {
					continue
				}
			}
			a.fail(Classify("append "+a.cfg.describe(), err, ClassConnect))
			return
		}
		switch {
		case strings.HasPrefix(line, "+"):
			select {
			case a.cont <- line:
			default:
			}
		case strings.HasPrefix(line, "* "):
			if strings.HasPrefix(strings.ToUpper(line), "* BYE") {
				a.fail(&Error{Class: ClassConnect, Op: "append " + a.cfg.describe(), Text: strings.TrimSpace(line[5:])})
				return
			}
		default:
			tag, rest, _ := strings.Cut(line, " ")
			a.mu.Lock()
			b := a.pending[tag]
			delete(a.pending, tag)
			a.mu.Unlock()
			if b != nil {
				b.finish(parseAppendResult(b.mailbox, rest))
			}
		}
	}
}

// readLine reads one response line, splicing in literals ("{n}" at the end of a line) so that
// an unexpected untagged response with a literal cannot desynchronise us.
func (a *Appender) readLine() (string, error) {
	var sb strings.Builder
	for {
		l, err := a.br.ReadString('\n')
		if err != nil {
			return "", err
		}
		l = strings.TrimRight(l, "\r\n")
		sb.WriteString(l)
		if !strings.HasSuffix(l, "}") {
			return sb.String(), nil
		}
		open := strings.LastIndexByte(l, '{')
		n, err := strconv.ParseInt(strings.TrimSuffix(l[open+1:len(l)-1], "+"), 10, 64)
		if open < 0 || err != nil {
			return sb.String(), nil
		}
		if _, err := io.CopyN(io.Discard, a.br, n); err != nil {
			return "", err
		}
	}
}

// parseAppendResult reads "OK [APPENDUID v uids] text", "NO [CODE] text" or "BAD text".
func parseAppendResult(mailbox, rest string) BatchResult {
	status, text, _ := strings.Cut(rest, " ")
	code, args := "", ""
	if strings.HasPrefix(text, "[") {
		if end := strings.IndexByte(text, ']'); end > 0 {
			code, args, _ = strings.Cut(text[1:end], " ")
			text = strings.TrimSpace(text[end+1:])
		}
	}
	op := "append " + mailbox
	switch strings.ToUpper(status) {
	case "OK":
		var r BatchResult
		if strings.EqualFold(code, "APPENDUID") {
			v, set, _ := strings.Cut(args, " ")
			uv, err1 := strconv.ParseUint(v, 10, 32)
			uids, err2 := parseUIDSet(set)
			if err1 == nil && err2 == nil {
				r.UIDValidity, r.UIDs = uint32(uv), uids
			}
		}
		return r
	case "NO":
		return BatchResult{Err: &Error{Class: classifyResponse(code, text, ClassAppendRejected), Op: op, Code: strings.ToUpper(code), Text: text}}
	default:
		// BAD: the server could not parse what we sent (a header it refuses, a NUL byte...).
		return BatchResult{Err: &Error{Class: ClassAppendRejected, Op: op, Code: strings.ToUpper(code), Text: "BAD " + text}}
	}
}

func parseUIDSet(s string) ([]uint32, error) {
	var out []uint32
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				return nil, err
			}
		}
		if b < a {
			a, b = b, a
		}
		for u := a; u <= b; u++ {
			out = append(out, uint32(u))
		}
	}
	return out, nil
}

// handshake reads the greeting, upgrades with STARTTLS, logs in and learns capabilities.
func (a *Appender) handshake(cred Credentials) error {
	op := "login " + a.cfg.describe() + " (append)"
	greet, err := a.readLine()
	if err != nil {
		return Classify(op, err, ClassConnect)
	}
	if strings.HasPrefix(strings.ToUpper(greet), "* BYE") {
		return &Error{Class: ClassThrottled, Op: op, Text: greet}
	}
	a.parseCaps(greet)
	if a.cfg.Security == "starttls" {
		if err := a.simple(op, "STARTTLS"); err != nil {
			return &Error{Class: ClassTLS, Op: op, Err: err}
		}
		tc, err := a.cfg.TLSConfig()
		if err != nil {
			return errorf(ClassTLS, op, "%v", err)
		}
		tconn := tls.Client(a.conn, tc)
		if err := tconn.Handshake(); err != nil {
			return classifyDial(op, err)
		}
		a.conn = tconn
		a.br.Reset(tconn)
		a.bw.Reset(deadlineWriter{a})
		a.caps = nil
	}
	if err := a.login(op, cred); err != nil {
		return err
	}
	if a.caps == nil || !a.caps["IMAP4REV1"] && !a.caps["IMAP4REV2"] {
		if err := a.simple(op, "CAPABILITY"); err != nil {
			return err
		}
	}
	a.literalPlus = a.caps["LITERAL+"]
	a.literalMin = a.caps["LITERAL-"]
	a.multi = a.caps["MULTIAPPEND"]
	a.uidplus = a.caps["UIDPLUS"]
	for c := range a.caps {
		if v, ok := strings.CutPrefix(c, "APPENDLIMIT="); ok {
			a.appendLimit, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return nil
}

// parseCaps picks a capability list out of a greeting, a CAPABILITY response or a response code.
func (a *Appender) parseCaps(line string) {
	up := strings.ToUpper(line)
	i := strings.Index(up, "CAPABILITY ")
	if i < 0 {
		return
	}
	list := line[i+len("CAPABILITY "):]
	if j := strings.IndexByte(list, ']'); j >= 0 {
		list = list[:j]
	}
	a.caps = map[string]bool{}
	for _, c := range strings.Fields(list) {
		a.caps[strings.ToUpper(c)] = true
	}
}

// simple runs a command synchronously (before the read loop starts), collecting capabilities.
func (a *Appender) simple(op, cmd string) error {
	tag := a.nextTag()
	a.bw.WriteString(tag + " " + cmd + "\r\n")
	if err := a.bw.Flush(); err != nil {
		return Classify(op, err, ClassConnect)
	}
	return a.await(op, tag, nil)
}

// await reads until tag completes; onCont answers continuation requests.
func (a *Appender) await(op, tag string, onCont func(string) error) error {
	for {
		line, err := a.readLine()
		if err != nil {
			return Classify(op, err, ClassConnect)
		}
		switch {
		case strings.HasPrefix(line, "+"):
			if onCont == nil {
				return errorf(ClassProtocol, op, "unexpected continuation request")
			}
			if err := onCont(strings.TrimSpace(strings.TrimPrefix(line, "+"))); err != nil {
				return err
			}
		case strings.HasPrefix(line, "* "):
			if strings.HasPrefix(strings.ToUpper(line), "* BYE") {
				return &Error{Class: ClassConnect, Op: op, Text: line}
			}
			a.parseCaps(line)
		case strings.HasPrefix(line, tag+" "):
			a.parseCaps(line)
			r := parseAppendResult(op, strings.TrimPrefix(line, tag+" "))
			if r.Err != nil {
				var e *Error
				errors.As(r.Err, &e)
				e.Op = op
				if e.Class == ClassAppendRejected {
					e.Class = ClassProtocol
				}
				return e
			}
			return nil
		}
	}
}

func (a *Appender) login(op string, cred Credentials) error {
	fail := func(err error) error {
		var e *Error
		if errors.As(err, &e) && (e.Class == ClassProtocol || e.Class == ClassAppendRejected) {
			e.Class = ClassAuth
		}
		return err
	}
	if a.cfg.mech() == "login" && quotable(a.cfg.User) && quotable(cred.Password) {
		tag := a.nextTag()
		a.bw.WriteString(tag + " LOGIN " + quote(a.cfg.User) + " " + quote(cred.Password) + "\r\n")
		if err := a.bw.Flush(); err != nil {
			return Classify(op, err, ClassConnect)
		}
		return fail(a.await(op, tag, nil))
	}
	cfg := a.cfg
	if cfg.mech() == "login" {
		cfg.Auth = "plain" // a password LOGIN cannot quote: SASL PLAIN carries any bytes
	}
	sc, err := saslClient(cfg, cred)
	if err != nil {
		return errorf(ClassAuth, op, "%v", err)
	}
	mech, ir, err := sc.Start()
	if err != nil {
		return errorf(ClassAuth, op, "%v", err)
	}
	tag := a.nextTag()
	a.bw.WriteString(tag + " AUTHENTICATE " + mech)
	if ir != nil && a.caps["SASL-IR"] {
		enc := base64.StdEncoding.EncodeToString(ir)
		if enc == "" {
			enc = "="
		}
		a.bw.WriteString(" " + enc)
		ir = nil
	}
	a.bw.WriteString("\r\n")
	if err := a.bw.Flush(); err != nil {
		return Classify(op, err, ClassConnect)
	}
	return fail(a.await(op, tag, func(challenge string) error {
		var resp []byte
		if challenge == "" && ir != nil {
			resp, ir = ir, nil
		} else {
			ch, err := base64.StdEncoding.DecodeString(challenge)
			if err != nil {
				return errorf(ClassProtocol, op, "bad SASL challenge")
			}
			if resp, err = sc.Next(ch); err != nil {
				return errorf(ClassAuth, op, "%v", err)
			}
		}
		a.bw.WriteString(base64.StdEncoding.EncodeToString(resp) + "\r\n")
		return a.bw.Flush()
	}))
}

// quotable reports whether s fits an IMAP quoted string (no CR, LF, NUL or 8-bit bytes).
func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 || c >= 0x80 {
			return false
		}
	}
	return true
}

// quote renders an IMAP quoted string; callers check quotable first (mailbox names are
// modified UTF-7, hence 7-bit).
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// quoteMailbox encodes a UTF-8 mailbox name in modified UTF-7 (INBOX is case-insensitive).
func quoteMailbox(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return quote(folders.EncodeUTF7(name))
}

// validFlag accepts system flags and keywords that are valid IMAP atoms; anything else would
// break the command.
func validFlag(f string) bool {
	if f == "" || strings.EqualFold(f, `\Recent`) || f == `\*` {
		return false
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"]`, c) >= 0 || (c == '\\' && i > 0) {
			return false
		}
	}
	return true
}
