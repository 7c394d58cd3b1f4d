// Package imapx connects cutover to IMAP servers: TLS, STARTTLS or plain transport, LOGIN and
// SASL (PLAIN with an authorization identity for admin/proxy logins, XOAUTH2, OAUTHBEARER),
// timeouts and keepalives, typed errors the workflows can classify, and a streaming,
// pipelined MULTIAPPEND writer for the destination side.
package imapx

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Class says what kind of failure an Error is; workflows and the engine act on it.
type Class string

const (
	ClassAuth           Class = "auth"            // bad credentials: permanent until fixed
	ClassConnect        Class = "connect"         // dial, reset, timeout, BYE: retry
	ClassTLS            Class = "tls"             // handshake or certificate: permanent until fixed
	ClassThrottled      Class = "throttled"       // server asks us to slow down: retry later
	ClassQuota          Class = "quota"           // destination over quota
	ClassTooBig         Class = "too_big"         // message above the server's size limit
	ClassAppendRejected Class = "append_rejected" // destination refused a message for another reason
	ClassNoFolder       Class = "no_folder"       // TRYCREATE / NONEXISTENT
	ClassFetch          Class = "fetch"           // source could not deliver a message
	ClassPermission     Class = "permission"      // NOPERM: the account may not do this (create a folder): permanent
	ClassProtocol       Class = "protocol"        // unexpected answer
)

// Error is a classified IMAP failure. Its text never contains credentials.
type Error struct {
	Class Class
	Op    string // what was being done, e.g. "login alice@127.0.0.1:993"
	Code  string // IMAP response code, e.g. "OVERQUOTA"
	Text  string // the server's human-readable text, if any
	Err   error
}

func (e *Error) Error() string {
	msg := e.Op + ": " + string(e.Class)
	if e.Code != "" {
		msg += " [" + e.Code + "]"
	}
	if e.Text != "" {
		msg += " " + e.Text
	}
	if e.Err != nil && e.Text == "" {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of err, ClassConnect for network errors and "" otherwise.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	if isNetErr(err) {
		return ClassConnect
	}
	return ""
}

// Retryable reports whether trying again later (on a new connection) may succeed.
func Retryable(err error) bool {
	switch ClassOf(err) {
	case ClassConnect, ClassThrottled:
		return true
	}
	return false
}

func isNetErr(err error) bool {
	var ne net.Error
	var ie *imap.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeBye)
}

// Classify wraps an error from an IMAP command into an *Error (nil stays nil). A tagged NO or
// BAD from the server is classified by its response code and text; transport failures become
// ClassConnect; anything else gets def.
func Classify(op string, err error, def Class) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		if ie.Type == imap.StatusResponseTypeBye {
			return &Error{Class: ClassConnect, Op: op, Code: string(ie.Code), Text: ie.Text, Err: err}
		}
		return &Error{Class: classifyResponse(string(ie.Code), ie.Text, def), Op: op, Code: string(ie.Code), Text: ie.Text, Err: err}
	}
	if isNetErr(err) {
		return &Error{Class: ClassConnect, Op: op, Err: err}
	}
	return &Error{Class: def, Op: op, Err: err}
}

// classifyResponse maps a NO/BAD answer's code and text onto a Class.
func classifyResponse(code, text string, def Class) Class {
	lt := strings.ToLower(text)
	switch strings.ToUpper(code) {
	case "AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED":
		return ClassAuth
	case "OVERQUOTA":
		return ClassQuota
	case "TOOBIG":
		return ClassTooBig
	case "LIMIT":
		if strings.Contains(lt, "size") || strings.Contains(lt, "large") || strings.Contains(lt, "big") {
			return ClassTooBig
		}
		return ClassThrottled
	case "TRYCREATE", "NONEXISTENT":
		return ClassNoFolder
	case "NOPERM":
		return ClassPermission
	case "UNAVAILABLE", "INUSE", "THROTTLED":
		return ClassThrottled
	}
	switch {
	case strings.Contains(lt, "quota"):
		return ClassQuota
	case strings.Contains(lt, "throttl") || strings.Contains(lt, "rate limit") || tooManyOfUs(lt):
		return ClassThrottled
	}
	return def
}

// tooManyOfUs reports a text saying the client does too much at once ("too many connections",
// "too many simultaneous logins", "too many requests"). "Too many" alone says nothing: Cyrus
// refuses an APPEND or STORE with "Too many user flags in mailbox" (its per-folder keyword
// limit), which waiting never fixes.
func tooManyOfUs(lt string) bool {
	if !strings.Contains(lt, "too many") {
		return false
	}
	for _, w := range []string{"connection", "session", "login", "request", "command", "simultaneous", "concurrent"} {
		if strings.Contains(lt, w) {
			return true
		}
	}
	return false
}

func errorf(class Class, op, format string, args ...any) *Error {
	return &Error{Class: class, Op: op, Err: fmt.Errorf(format, args...)}
}
