package imapx

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

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
