package imapx

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

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
