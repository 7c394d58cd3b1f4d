package imapx

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// scriptedServer accepts one connection and runs serve on it.
func scriptedServer(t *testing.T, serve func(r *bufio.Reader, w net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		serve(bufio.NewReader(c), c)
	}()
	return ln.Addr().String()
}

// tagOf is the tag of a command line.
func tagOf(line string) string { tag, _, _ := strings.Cut(line, " "); return tag }

// TestDialSendsLoginBeforeTheGreeting: a server that greets only once it has read a LOGIN
// gets one (Dial does not wait for the greeting to send it), and the session works.
func TestDialSendsLoginBeforeTheGreeting(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	addr := scriptedServer(t, func(r *bufio.Reader, w net.Conn) {
		line, err := r.ReadString('\n')
		if err != nil {
			got <- "read: " + err.Error()
			return
		}
		got <- strings.TrimSpace(line)
		w.Write([]byte("* OK [CAPABILITY IMAP4rev1] ready\r\n" + tagOf(line) + " OK [CAPABILITY IMAP4rev1] logged in\r\n"))
		line, _ = r.ReadString('\n')
		w.Write([]byte(tagOf(line) + " OK noop\r\n"))
		r.ReadString('\n') // LOGOUT
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{Addr: addr, Security: "plain", User: "alice"}, Credentials{Password: `pw "x"`})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Logout()
	if line := <-got; !strings.HasSuffix(line, `LOGIN "alice" "pw \"x\""`) {
		t.Fatalf("first line the server read = %q, want the LOGIN", line)
	}
	if err := c.Noop(ctx); err != nil {
		t.Fatalf("noop after login: %v", err)
	}
}

// TestDialEarlyLoginAfterPreauth: a PREAUTH greeting refuses the LOGIN sent behind the
// connection; the session is authenticated all the same and Dial succeeds.
func TestDialEarlyLoginAfterPreauth(t *testing.T) {
	t.Parallel()
	addr := scriptedServer(t, func(r *bufio.Reader, w net.Conn) {
		w.Write([]byte("* PREAUTH [CAPABILITY IMAP4rev1] logged in as alice\r\n"))
		line, _ := r.ReadString('\n')
		w.Write([]byte(tagOf(line) + " BAD already authenticated\r\n"))
		line, _ = r.ReadString('\n')
		w.Write([]byte(tagOf(line) + " OK noop\r\n"))
		r.ReadString('\n')
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{Addr: addr, Security: "plain", User: "alice"}, Credentials{Password: "pw"})
	if err != nil {
		t.Fatalf("dial after PREAUTH: %v", err)
	}
	defer c.Logout()
	if err := c.Noop(ctx); err != nil {
		t.Fatalf("noop after PREAUTH: %v", err)
	}
}

// TestDialEarlyLoginRefused: a LOGIN refused after an OK greeting is a credentials error.
func TestDialEarlyLoginRefused(t *testing.T) {
	t.Parallel()
	addr := scriptedServer(t, func(r *bufio.Reader, w net.Conn) {
		w.Write([]byte("* OK [CAPABILITY IMAP4rev1] ready\r\n"))
		line, _ := r.ReadString('\n')
		w.Write([]byte(tagOf(line) + " NO [AUTHENTICATIONFAILED] bad password\r\n"))
		r.ReadString('\n')
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{Addr: addr, Security: "plain", User: "alice"}, Credentials{Password: "wrong"})
	if err == nil {
		c.Logout()
		t.Fatal("dial with a refused LOGIN succeeded")
	}
	if got := ClassOf(err); got != ClassAuth {
		t.Fatalf("ClassOf(err) = %s, want %s (%v)", got, ClassAuth, err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("the error shows the password: %v", err)
	}
}
