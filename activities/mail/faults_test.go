package mail

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
	"github.com/cutover/cutover/internal/testing/faultproxy"
)

// These are the engine's fault tests of issue 9 (TestFault…, selected by make test-faults):
// network faults between the engine and each server, server answers Dovecot will not give
// (scripted with go-imap's server), changes of the source between passes and malformed
// messages. Every case ends with the destination compared to the source byte for byte.

// markerCorpus is n messages over three folders; message n/2 of INBOX carries marker in the
// middle of its body, so a fault keyed on the marker fires inside that message's literal.
func markerCorpus(n int, marker string) []mailtest.Message {
	msgs := mailtest.Bulk(mailtest.BulkOptions{Messages: n, Folders: []string{"INBOX", "Archive", "Projects/Big"}, Seed: 11})
	d := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	body := strings.Repeat("before the marker, enough text that the literal is well under way.\n", 400) + marker + "\n" +
		strings.Repeat("after the marker, the rest of the literal that never arrives on the first try.\n", 400)
	m := mailtest.Message{Folder: "INBOX", Date: d, Flags: []string{`\Seen`},
		Raw: mailtest.Text("marked@fault.example", "m@x", "the marked message", d, body)}
	return slices.Insert(msgs, n/2, m)
}

// rawMessages reads every message of a Dovecot user over IMAP: Message-ID → the raw bodies
// found (several when duplicated), folder-qualified.
func rawMessages(t testing.TB, c *imapclient.Client) map[string][][]byte {
	t.Helper()
	ls, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][][]byte{}
	for _, l := range ls {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		st, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("select %s: %v", l.Mailbox, err)
		}
		if st.NumMessages == 0 {
			continue
		}
		section := &imap.FetchItemBodySection{Peek: true}
		all, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil {
			t.Fatalf("fetch %s: %v", l.Mailbox, err)
		}
		for _, m := range all {
			raw := m.FindBodySection(section)
			key := folderKey(l.Mailbox) + " " + messageID(raw)
			out[key] = append(out[key], raw)
		}
	}
	return out
}

// folderKey folds the two test namespaces (source "/", destination "INBOX." prefix and ".")
// onto one spelling.
func folderKey(name string) string {
	name = strings.TrimPrefix(name, "INBOX.")
	return strings.ReplaceAll(name, ".", "/")
}

func messageID(raw []byte) string {
	lower := bytes.ToLower(raw)
	i := 0
	if !bytes.HasPrefix(lower, []byte("message-id:")) {
		if i = bytes.Index(lower, []byte("\nmessage-id:")); i < 0 {
			return "(none)"
		}
		i++
	}
	rest := raw[i+len("message-id:"):]
	if j := bytes.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	return string(bytes.TrimSpace(rest))
}

// byteCompare requires every source message on the destination exactly once and byte for
// byte (folders mapped), and nothing else there. except lists Message-IDs expected absent.
func byteCompare(t testing.TB, e *env, except ...string) (compared int) {
	t.Helper()
	src := rawMessages(t, client(t, e.src, srcPassword))
	dst := rawMessages(t, client(t, e.dst, dstPassword))
	for k, bodies := range src {
		dk := strings.Replace(k, "Sent Items ", "Sent ", 1) // the env's folder map
		id := k[strings.LastIndexByte(k, ' ')+1:]
		if slices.Contains(except, id) {
			if len(dst[dk]) != 0 {
				t.Errorf("%s: on the destination though it should not be", k)
			}
			continue
		}
		got := dst[dk]
		switch {
		case len(got) < len(bodies):
			t.Errorf("%s: %d on the source, %d on the destination (missing)", k, len(bodies), len(got))
		case len(got) > len(bodies):
			t.Errorf("%s: %d on the source, %d on the destination (duplicated)", k, len(bodies), len(got))
		}
		for _, b := range bodies {
			if !slices.ContainsFunc(got, func(g []byte) bool { return bytes.Equal(g, b) }) {
				t.Errorf("%s: no byte-identical copy on the destination (%d bytes on the source)", k, len(b))
			}
			compared++
		}
	}
	for k := range dst {
		sk := strings.Replace(k, "Sent ", "Sent Items ", 1)
		if _, ok := src[sk]; !ok {
			if _, ok := src[k]; !ok {
				t.Errorf("%s: on the destination only", k)
			}
		}
	}
	return compared
}

// TestFaultNetwork puts a fault proxy between the engine and one server and breaks the
// connection inside a message literal — cut (FIN), reset (RST), stalled, or slowed down — on
// the destination while an APPEND streams and on the source while a FETCH streams, and
// loses the destination's OK for a stored batch (once, and on the retry as well). The pass
// redials with backoff and resumes from the ledger; a batch whose answer was lost is checked
// on the destination by identity before anything is sent again. Every message must arrive
// exactly once and byte-identical.
func TestFaultNetwork(t *testing.T) {
	const marker = "XMARKER-7c1d"
	cases := []struct {
		name      string
		dest      bool
		fault     faultproxy.Fault
		reconnect bool          // the fault must have made the engine reconnect
		idle      time.Duration // Engine.IdleTimeout, when the case needs it short
	}{
		{"APPEND literal cut", true, faultproxy.Fault{Dir: faultproxy.ClientToServer, CutAt: []byte(marker), Times: 1}, true, 0},
		{"APPEND literal reset", true, faultproxy.Fault{Dir: faultproxy.ClientToServer, CutAt: []byte(marker), Reset: true, Times: 1}, true, 0},
		{"APPEND literal stalled", true, faultproxy.Fault{Dir: faultproxy.ClientToServer, CutAt: []byte(marker), Stall: 3 * time.Second, Times: 1}, false, 0},
		{"APPEND slowed", true, faultproxy.Fault{Dir: faultproxy.ClientToServer, BytesPerSec: 2 << 20}, false, 0},
		{"APPEND answer lost", true, faultproxy.Fault{Dir: faultproxy.ServerToClient, CutAt: []byte("OK [APPENDUID"), Times: 1}, true, 0},
		{"APPEND answer lost twice", true, faultproxy.Fault{Dir: faultproxy.ServerToClient, CutAt: []byte("OK [APPENDUID"), Times: 2}, true, 0},
		{"FETCH literal cut", false, faultproxy.Fault{Dir: faultproxy.ServerToClient, CutAt: []byte(marker), Times: 1}, true, 0},
		{"FETCH literal reset", false, faultproxy.Fault{Dir: faultproxy.ServerToClient, CutAt: []byte(marker), Reset: true, Times: 2}, true, 0},
		{"FETCH literal stalled", false, faultproxy.Fault{Dir: faultproxy.ServerToClient, CutAt: []byte(marker), Stall: 3 * time.Second, Times: 1}, false, 0},
		// A source that goes silent for good inside a literal, connection open: the FETCH
		// watchdog drops it after IdleTimeout and the folder resumes on a new connection.
		{"FETCH literal stalled for good", false, faultproxy.Fault{Dir: faultproxy.ServerToClient, CutAt: []byte(marker), Stall: time.Hour, Times: 1}, true, 2 * time.Second},
		{"FETCH slowed", false, faultproxy.Fault{Dir: faultproxy.ServerToClient, BytesPerSec: 2 << 20}, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, nil)
			e.eng.ChunkMessages, e.eng.BatchMessages, e.eng.IdleTimeout = 40, 10, c.idle
			corpus := markerCorpus(150, marker)
			mailtest.SeedMaildir(t, e.src, "alice", corpus)
			p := proxied(t, e, c.dest)
			p.Set(c.fault)
			start := time.Now()
			st := e.sync(model.ModeCopy)
			if c.fault.Times > 0 && p.Cuts()+p.Stalls() == 0 {
				t.Fatal("the fault never fired: the test proves nothing")
			}
			if c.reconnect && st.ErrorsByClass["reconnect"] == 0 {
				t.Errorf("no reconnect recorded: %v", st.ErrorsByClass)
			}
			if n := int64(len(corpus)); st.Transferred != n {
				t.Errorf("st.Transferred: want n; transferred %d pending %d quarantined %d, want %d, 0, 0 (errors %v)",
					st.Transferred, st.Pending, st.Quarantined, n, st.ErrorsByClass)
			} else if st.Pending != 0 {
				t.Errorf("st.Pending: want 0; transferred %d pending %d quarantined %d, want %d, 0, 0 (errors %v)",
					st.Transferred, st.Pending, st.Quarantined, n, st.ErrorsByClass)
			} else if st.Quarantined != 0 {
				t.Errorf("st.Quarantined: want 0; transferred %d pending %d quarantined %d, want %d, 0, 0 (errors %v)",
					st.Transferred, st.Pending, st.Quarantined, n, st.ErrorsByClass)
			}
			n := byteCompare(t, e)
			e.requireClean(0)
			if st := e.sync(model.ModeCopy); st.Transferred != 0 {
				t.Errorf("the next pass transferred %d", st.Transferred)
			}
			t.Logf("%s: %d messages byte-identical after %s (%d connections through the proxy, %d cut, %d stalled; errors %v)", c.name, n,
				time.Since(start).Round(time.Millisecond), p.Accepted(), p.Cuts(), p.Stalls(), st.ErrorsByClass)
		})
	}
}

func TestFaultHelpers(t *testing.T) {
	for raw, want := range map[string]string{"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody": "<a@b>",
		"message-id:  <c@d>\n\n": "<c@d>", "Subject: none\r\n\r\nMessage-ID: <in-body>": "<in-body>", "x": "(none)"} {
		if got := messageID([]byte(raw)); got != want {
			t.Errorf("messageID(%q) = %q, want %q", raw, got, want)
		}
	}
	if got := folderKey("INBOX.Projects.Big"); got != "Projects/Big" {
		t.Errorf("folderKey = %q", got)
	}
}
