package mail

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/activities/mail/mailtest"
	"github.com/cutover/cutover/internal/model"
)

var quotaPlugin = []string{"mail_plugins = $mail_plugins quota", "plugin {", "  quota = maildir:User quota",
	"  quota_rule = *:storage=1G", "  quota_max_mail_size = 1M", "}"}

// A destination advertising APPENDLIMIT: the big message is quarantined without being sent,
// everything else arrives, verify counts it as quarantined rather than missing, and later
// passes neither retry nor re-count it as pending.
func TestAppendLimitQuarantine(t *testing.T) {
	e := newEnv(t, nil, append([]string{"imap_capability = +APPENDLIMIT=1048576"}, quotaPlugin...))
	corpus := mailtest.Standard(2 << 20)
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	st := e.sync(model.ModeCopy)
	n := countCorpus(corpus)
	if st.Quarantined != 1 {
		t.Fatalf("st.Quarantined: want 1; pass: transferred %d quarantined %d pending %d errors %v; want %d, 1, 0",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass, n-1)
	}
	if st.Transferred != n-1 {
		t.Fatalf("st.Transferred: want n-1; pass: transferred %d quarantined %d pending %d errors %v; want %d, 1, 0",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass, n-1)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; pass: transferred %d quarantined %d pending %d errors %v; want %d, 1, 0",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass, n-1)
	}
	if st.ErrorsByClass["too_big"] != 1 {
		t.Fatalf("st.ErrorsByClass[\"too_big\"] = %v, want 1; pass: transferred %d quarantined %d pending %d errors %v; want %d, 1, 0",
			st.ErrorsByClass["too_big"], st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass, n-1)
	}
	qs, err := e.db.ListMailQuarantine(context.Background(), e.spec.MailboxID, 0, false)
	if err != nil {
		t.Fatalf("err: want nil; quarantine rows: %+v, %v", qs, err)
	}
	if len(qs) != 1 {
		t.Fatalf("len(qs) = %v, want 1; quarantine rows: %+v, %v", len(qs), qs, err)
	}
	if q := qs[0]; q.ErrorClass != "too_big" {
		t.Errorf("q.ErrorClass = %v, want \"too_big\"; quarantine row: %+v", q.ErrorClass, q)
	} else if !strings.Contains(q.Reason, "1048576") {
		t.Errorf("strings.Contains(q.Reason, \"1048576\") is false; quarantine row: %+v", q)
	} else if q.Description != "<big-attachment@corpus.example>" {
		t.Errorf("q.Description = %v, want \"<big-attachment@corpus.example>\"; quarantine row: %+v",
			q.Description, q)
	} else if q.Size <= 1<<20 {
		t.Errorf("q.Size = %v, want > 1<<20; quarantine row: %+v", q.Size, q)
	}
	rep := e.requireClean(1)
	if rep.Missing != 0 {
		t.Errorf("quarantined message counted missing")
	}
	st = e.sync(model.ModeCopy)
	if st.Transferred != 0 {
		t.Fatalf("st.Transferred: want 0; second pass: transferred %d quarantined %d pending %d errors %v",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	}
	if st.Quarantined != 1 {
		t.Fatalf("st.Quarantined: want 1; second pass: transferred %d quarantined %d pending %d errors %v",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; second pass: transferred %d quarantined %d pending %d errors %v",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	}
	if st.ErrorsByClass["too_big"] != 0 {
		t.Fatalf("st.ErrorsByClass[\"too_big\"] = %v, want 0; second pass: transferred %d quarantined %d pending %d errors %v",
			st.ErrorsByClass["too_big"], st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	}
}

// A destination that enforces a size limit without advertising it answers NO [LIMIT]: the
// refused MULTIAPPEND batch is retried one message at a time, so only the culprit is
// quarantined, with the server's own words.
func TestServerRefusalIsolatedAndQuarantined(t *testing.T) {
	e := newEnv(t, nil, quotaPlugin)
	var corpus []mailtest.Message
	d := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		corpus = append(corpus, mailtest.Message{Folder: "INBOX", Date: d.Add(time.Duration(i) * time.Hour),
			Raw: mailtest.Text("small-"+string(rune('a'+i))+"@x", "s@x", "small", d, "small")})
		if i == 7 {
			corpus = append(corpus, mailtest.Big("INBOX", "too-big@x", d, 3<<20))
		}
	}
	mailtest.SeedMaildir(t, e.src, "alice", corpus)
	st := e.sync(model.ModeCopy)
	if st.Transferred != 20 {
		t.Fatalf("st.Transferred: want 20; pass: transferred %d quarantined %d pending %d errors %v",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	}
	if st.Quarantined != 1 {
		t.Fatalf("st.Quarantined: want 1; pass: transferred %d quarantined %d pending %d errors %v",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	}
	if st.Pending != 0 {
		t.Fatalf("st.Pending: want 0; pass: transferred %d quarantined %d pending %d errors %v",
			st.Transferred, st.Quarantined, st.Pending, st.ErrorsByClass)
	}
	qs, _ := e.db.ListMailQuarantine(context.Background(), e.spec.MailboxID, 0, false)
	if len(qs) != 1 {
		t.Fatalf("len(qs) = %v, want 1; quarantine: %+v", len(qs), qs)
	}
	if qs[0].ErrorClass != "too_big" {
		t.Fatalf("qs[0].ErrorClass = %v, want \"too_big\"; quarantine: %+v", qs[0].ErrorClass, qs)
	}
	if !strings.Contains(qs[0].Reason, "[LIMIT]") {
		t.Fatalf("strings.Contains(qs[0].Reason, \"[LIMIT]\") is false; quarantine: %+v", qs)
	}
	if qs[0].Description != "<too-big@x>" {
		t.Fatalf("qs[0].Description = %v, want \"<too-big@x>\"; quarantine: %+v", qs[0].Description, qs)
	}
	e.requireClean(1)
}
