package imapx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

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
