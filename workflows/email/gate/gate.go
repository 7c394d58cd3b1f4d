// Package gate is the go/no-go decision before anyone touches DNS/MX: six checks,
// each pass/warn/fail, folded into the job's migration_gate. It is pure (no I/O, no time, no
// map iteration) so workflow code can call it and tests can enumerate it.
//
// The per-mailbox checks are assessed one mailbox at a time and accumulated into a Summary,
// which merges: a wave of 10,000 mailboxes hands the job workflow one small Summary, never
// 10,000 results.
package gate

import (
	"fmt"
	"strings"

	"github.com/cutover/cutover/internal/model"
)

// Thresholds are the per-job limits of the checks; zero values take the defaults.
type Thresholds struct {
	// CountRatioPass: destination/source message ratio (quarantined messages excluded from the
	// source side) at or above which count_ratio passes. Default 1.0: every message accounted for.
	CountRatioPass float64 `json:"count_ratio_pass,omitempty" yaml:"count_ratio_pass,omitempty"`
	// CountRatioWarn: at or above this (and below pass) count_ratio warns; below it fails. Default 0.98.
	CountRatioWarn float64 `json:"count_ratio_warn,omitempty" yaml:"count_ratio_warn,omitempty"`
	// QuarantineFailRatio: quarantined/source above this fails pst_quarantine; any quarantine
	// at or below it warns (a human looks at what the destination refused). Default 0.01.
	QuarantineFailRatio float64 `json:"quarantine_fail_ratio,omitempty" yaml:"quarantine_fail_ratio,omitempty"`
	// DeltaPendingFail: messages still pending on a mailbox after its last pass at or above
	// which delta_pending fails; fewer (but some) warn. Default 100.
	DeltaPendingFail int64 `json:"delta_pending_fail,omitempty" yaml:"delta_pending_fail,omitempty"`
}

// Defaults of Thresholds.
const (
	DefaultCountRatioPass      = 1.0
	DefaultCountRatioWarn      = 0.98
	DefaultQuarantineFailRatio = 0.01
	DefaultDeltaPendingFail    = 100
)

// WithDefaults fills zero fields.
func (t Thresholds) WithDefaults() Thresholds {
	if t.CountRatioPass == 0 {
		t.CountRatioPass = DefaultCountRatioPass
	}
	if t.CountRatioWarn == 0 {
		t.CountRatioWarn = min(DefaultCountRatioWarn, t.CountRatioPass)
	}
	if t.QuarantineFailRatio == 0 {
		t.QuarantineFailRatio = DefaultQuarantineFailRatio
	}
	if t.DeltaPendingFail == 0 {
		t.DeltaPendingFail = DefaultDeltaPendingFail
	}
	return t
}

// Validate reports thresholds that cannot make sense.
func (t Thresholds) Validate() error {
	t = t.WithDefaults()
	// Written as "not inside the range" so that NaN (YAML .nan), which every comparison
	// rejects, is refused too: it would pass and then fail to encode as a workflow input.
	switch {
	case !(t.CountRatioPass > 0 && t.CountRatioPass <= 1):
		return fmt.Errorf("count_ratio_pass %v: want 0 < x <= 1", t.CountRatioPass)
	case !(t.CountRatioWarn > 0 && t.CountRatioWarn <= t.CountRatioPass):
		return fmt.Errorf("count_ratio_warn %v: want 0 < x <= count_ratio_pass (%v)", t.CountRatioWarn, t.CountRatioPass)
	case !(t.QuarantineFailRatio >= 0 && t.QuarantineFailRatio <= 1):
		return fmt.Errorf("quarantine_fail_ratio %v: want 0 <= x <= 1", t.QuarantineFailRatio)
	case t.DeltaPendingFail < 1:
		return fmt.Errorf("delta_pending_fail %d: want >= 1", t.DeltaPendingFail)
	}
	return nil
}

// MailboxFacts is what the latest pass (or verify) says about one mailbox.
type MailboxFacts struct {
	Email  string `json:"email"`
	Synced bool   `json:"synced"`          // a pass completed; false = never synced or the last pass failed
	Error  string `json:"error,omitempty"` // why the last pass failed
	// Whole mailbox, after the pass.
	SourceMessages int64 `json:"source_messages"`
	DestMessages   int64 `json:"dest_messages"`
	Quarantined    int64 `json:"quarantined"`
	Pending        int64 `json:"pending"` // seen on the source, not on the destination when the pass ended
	// Special folders; Has* false when the source has no such folder.
	HasInbox         bool  `json:"has_inbox"`
	InboxSource      int64 `json:"inbox_source"`
	InboxDest        int64 `json:"inbox_dest"`
	InboxQuarantined int64 `json:"inbox_quarantined"`
	HasSent          bool  `json:"has_sent"`
	SentSource       int64 `json:"sent_source"`
	SentDest         int64 `json:"sent_dest"`
	SentQuarantined  int64 `json:"sent_quarantined"`
	// DestHeld: messages on the destination that the job did not place (never deleted but
	// by strict_mirror), for the dest_held check.
	DestHeld int64 `json:"dest_held,omitempty"`
	// KeywordsDropped: messages stored without some of their keywords, which the destination
	// refused (DroppedKeywords names some), for the quarantine check.
	KeywordsDropped int64    `json:"keywords_dropped,omitempty"`
	DroppedKeywords []string `json:"dropped_keywords,omitempty"`
	// StaleFolders: destination folders holding the job's copies of source folders since
	// renamed or deleted on the source (kept), for the dest_held check.
	StaleFolders int64 `json:"stale_folders,omitempty"`
}

// mailboxChecks are the checks assessed per mailbox, in CheckIDs order.
var mailboxChecks = []model.CheckID{
	model.CheckCountRatio, model.CheckInboxComplete, model.CheckSentComplete, model.CheckPSTQuarantine,
	model.CheckDeltaPending, model.CheckDestHeld,
}

// Finding is one check's verdict on one mailbox.
type Finding struct {
	Status  model.CheckStatus
	Message string // empty on pass
}

// Assess applies the per-mailbox checks to one mailbox.
func Assess(f MailboxFacts, t Thresholds) map[model.CheckID]Finding {
	t = t.WithDefaults()
	out := make(map[model.CheckID]Finding, len(mailboxChecks))
	if !f.Synced {
		msg := f.Email + ": no completed pass"
		if f.Error != "" {
			msg = f.Email + ": last pass failed: " + f.Error
		}
		for _, id := range mailboxChecks {
			out[id] = Finding{model.CheckFail, msg}
		}
		return out
	}
	out[model.CheckCountRatio] = countRatio(f, t)
	out[model.CheckInboxComplete] = folderComplete(f.Email, "INBOX", f.HasInbox, f.InboxSource, f.InboxDest, f.InboxQuarantined, f.Pending)
	out[model.CheckSentComplete] = folderComplete(f.Email, "Sent", f.HasSent, f.SentSource, f.SentDest, f.SentQuarantined, f.Pending)
	out[model.CheckPSTQuarantine] = quarantine(f, t)
	out[model.CheckDeltaPending] = deltaPending(f, t)
	out[model.CheckDestHeld] = destHeld(f)
	return out
}

// destHeld warns about mail on the destination the job did not place, so that someone looks
// at it before users switch: it stays (the default mirror never deletes it) and mixes with
// the migrated mail.
func destHeld(f MailboxFacts) Finding {
	if f.DestHeld <= 0 && f.StaleFolders <= 0 {
		return Finding{Status: model.CheckPass}
	}
	var parts []string
	if f.DestHeld > 0 {
		parts = append(parts, fmt.Sprintf("the destination holds %d message(s) the job did not copy (kept)", f.DestHeld))
	}
	if f.StaleFolders > 0 {
		parts = append(parts, fmt.Sprintf("%d destination folder(s) hold copies of source folders renamed or deleted "+
			"on the source (kept)", f.StaleFolders))
	}
	return Finding{model.CheckWarn, f.Email + ": " + strings.Join(parts, "; ")}
}

// Ratio is destination over source, quarantined messages excluded from the source side (they
// are reported by pst_quarantine, not counted as missing); 1 when nothing is expected.
func Ratio(source, dest, quarantined int64) float64 {
	expected := source - quarantined
	if expected <= 0 {
		return 1
	}
	return float64(dest) / float64(expected)
}

func countRatio(f MailboxFacts, t Thresholds) Finding {
	r := Ratio(f.SourceMessages, f.DestMessages, f.Quarantined)
	msg := fmt.Sprintf("%s: %d/%d messages (ratio %.4f)", f.Email, f.DestMessages, f.SourceMessages-f.Quarantined, r)
	switch {
	case r >= t.CountRatioPass:
		return Finding{Status: model.CheckPass}
	case r >= t.CountRatioWarn:
		return Finding{model.CheckWarn, msg}
	default:
		return Finding{model.CheckFail, msg}
	}
}

// folderComplete checks a special folder. A shortfall no larger than the messages that
// arrived during the pass only warns: the next pass copies them.
func folderComplete(email, name string, has bool, source, dest, quarantined, pending int64) Finding {
	if !has {
		return Finding{model.CheckWarn, fmt.Sprintf("%s: no %s folder detected on the source (check the folder map)", email, name)}
	}
	short := source - quarantined - dest
	switch {
	case short <= 0:
		return Finding{Status: model.CheckPass}
	case short <= pending:
		return Finding{model.CheckWarn, fmt.Sprintf("%s: %s %d/%d, %d arrived during the pass", email, name, dest, source-quarantined, short)}
	default:
		return Finding{model.CheckFail, fmt.Sprintf("%s: %s %d/%d, %d missing", email, name, dest, source-quarantined, short)}
	}
}

// quarantine reports what the destination refused: whole messages (quarantined; too many
// fail) and keywords of messages stored without them (a warning: the mail is there).
func quarantine(f MailboxFacts, t Thresholds) Finding {
	if f.Quarantined == 0 && f.KeywordsDropped == 0 {
		return Finding{Status: model.CheckPass}
	}
	var parts []string
	if f.Quarantined > 0 {
		parts = append(parts, fmt.Sprintf("%d message(s) quarantined (refused by the destination)", f.Quarantined))
	}
	if f.KeywordsDropped > 0 {
		kw := ""
		if len(f.DroppedKeywords) > 0 {
			kw = " (" + strings.Join(f.DroppedKeywords, " ") + ")"
		}
		parts = append(parts, fmt.Sprintf("%d message(s) stored without keywords the destination refused%s",
			f.KeywordsDropped, kw))
	}
	msg := f.Email + ": " + strings.Join(parts, "; ")
	if f.SourceMessages > 0 && float64(f.Quarantined)/float64(f.SourceMessages) > t.QuarantineFailRatio {
		return Finding{model.CheckFail, msg}
	}
	return Finding{model.CheckWarn, msg}
}

func deltaPending(f MailboxFacts, t Thresholds) Finding {
	switch {
	case f.Pending <= 0:
		return Finding{Status: model.CheckPass}
	case f.Pending < t.DeltaPendingFail:
		return Finding{model.CheckWarn, fmt.Sprintf("%s: %d message(s) pending after the last pass", f.Email, f.Pending)}
	default:
		return Finding{model.CheckFail, fmt.Sprintf("%s: %d message(s) pending after the last pass", f.Email, f.Pending)}
	}
}

// MaxExamples bounds the messages a Tally keeps, so a Summary stays small at any job size.
const MaxExamples = 5

// Tally counts one check's verdicts over many mailboxes and keeps a few examples of the worst.
type Tally struct {
	Pass     int64    `json:"pass"`
	Warn     int64    `json:"warn"`
	Fail     int64    `json:"fail"`
	Examples []string `json:"examples,omitempty"` // messages of the worst status seen, up to MaxExamples
	// Findings: every mailbox that did not pass, up to MaxFindings (Truncated past that), so a
	// human can accept a warning of one mailbox and a skipped mailbox can leave the gate
	// without a new pass (review.go).
	Findings  []MailboxFinding `json:"findings,omitempty"`
	Truncated bool             `json:"truncated,omitempty"`
	// WarnSource sums the source messages of the mailboxes that warn, listed or not: a review
	// of the whole check binds to it (and to Warn), so new mail on any of them voids it.
	WarnSource int64 `json:"warn_source,omitempty"`
}

func (t *Tally) worst() model.CheckStatus {
	switch {
	case t.Fail > 0:
		return model.CheckFail
	case t.Warn > 0:
		return model.CheckWarn
	default:
		return model.CheckPass
	}
}

func (t *Tally) add(s model.CheckStatus, msgs ...string) {
	before := t.worst()
	switch s {
	case model.CheckFail:
		t.Fail++
	case model.CheckWarn:
		t.Warn++
	default:
		t.Pass++
	}
	t.keep(before, s, msgs)
}

// keep maintains Examples as messages of the worst status: a worse status replaces them.
func (t *Tally) keep(before, s model.CheckStatus, msgs []string) {
	if s == model.CheckPass {
		return
	}
	if severity(s) > severity(before) {
		t.Examples = nil
	}
	if s != t.worst() {
		return
	}
	for _, m := range msgs {
		if len(t.Examples) < MaxExamples && m != "" {
			t.Examples = append(t.Examples, m)
		}
	}
}

func severity(s model.CheckStatus) int {
	switch s {
	case model.CheckFail:
		return 2
	case model.CheckWarn:
		return 1
	}
	return 0
}

// Summary accumulates the per-mailbox checks of a job.
type Summary struct {
	Mailboxes int64                   `json:"mailboxes"`
	Checks    map[model.CheckID]Tally `json:"checks"`
	// Unlisted: the mailboxes the checks count without listing them, in compact form (up to
	// MaxUnlisted; UnlistedDropped past that), so that skipping one takes it out of the gate.
	Unlisted        []Unlisted `json:"unlisted,omitempty"`
	UnlistedDropped bool       `json:"unlisted_dropped,omitempty"`
}

// Add folds one mailbox into the summary.
func (s *Summary) Add(f MailboxFacts, t Thresholds) {
	if s.Checks == nil {
		s.Checks = map[model.CheckID]Tally{}
	}
	s.Mailboxes++
	found := Assess(f, t)
	unlisted := map[model.CheckID][]MailboxFinding{}
	for _, id := range mailboxChecks { // fixed order: deterministic examples
		tl := s.Checks[id]
		tl.add(found[id].Status, found[id].Message)
		if found[id].Status == model.CheckWarn {
			tl.WarnSource += f.SourceMessages
		}
		if st := found[id].Status; st != model.CheckPass {
			mf := MailboxFinding{Email: f.Email, Status: st, Message: found[id].Message, Source: f.SourceMessages}
			unlisted[id] = tl.addFindings(mf)
		}
		s.Checks[id] = tl
	}
	s.addUnlisted(unlisted)
}

// Merge folds another summary in (o's examples after s's).
func (s *Summary) Merge(o Summary) {
	if s.Checks == nil {
		s.Checks = map[model.CheckID]Tally{}
	}
	s.Mailboxes += o.Mailboxes
	unlisted := map[model.CheckID][]MailboxFinding{}
	for _, id := range mailboxChecks {
		ot, ok := o.Checks[id]
		if !ok {
			continue
		}
		tl := s.Checks[id]
		before := tl.worst()
		tl.Pass += ot.Pass
		tl.Warn += ot.Warn
		tl.Fail += ot.Fail
		tl.WarnSource += ot.WarnSource
		tl.keep(before, ot.worst(), ot.Examples)
		unlisted[id] = tl.addFindings(ot.Findings...)
		tl.Truncated = tl.Truncated || ot.Truncated
		s.Checks[id] = tl
	}
	s.addUnlisted(unlisted)
	s.keepUnlisted(o.Unlisted...)
	s.UnlistedDropped = s.UnlistedDropped || o.UnlistedDropped
}

// Approval is the ops lead's sign-off.
type Approval struct {
	By   string `json:"by"`
	At   string `json:"at"` // RFC 3339, for the message only
	Note string `json:"note,omitempty"`
}

// Check is one evaluated check, as written to migration_gate_checks.
type Check struct {
	ID      model.CheckID     `json:"check_id"`
	Status  model.CheckStatus `json:"status"`
	Message string            `json:"message"`
	// Accepted: every warning of the check was reviewed and accepted (Reviews); the gate
	// counts it as passing (Effective). A failing check is never accepted.
	Accepted bool     `json:"accepted,omitempty"`
	Reviews  []Review `json:"reviews,omitempty"`
}

// Result is one evaluation of the gate.
type Result struct {
	Checks []Check    `json:"checks"`
	Gate   model.Gate `json:"gate"`
	// VoidApproval: an approval was given but critical checks now fail; the approval no longer
	// stands and the job must be approved again once they pass.
	VoidApproval bool `json:"void_approval,omitempty"`
	// Voided: reviews that no longer match their mailbox's warning (new mail, another
	// warning, a failure); EvaluateReviewed only.
	Voided []Review `json:"voided,omitempty"`
}

// Evaluate turns the accumulated checks and the approval (nil = none) into the six checks and
// the gate.
func Evaluate(s Summary, approval *Approval) Result {
	var res Result
	for _, id := range mailboxChecks {
		res.Checks = append(res.Checks, summarize(id, s))
	}
	otherFail := false
	for _, c := range res.Checks {
		otherFail = otherFail || c.Status == model.CheckFail
	}
	manual := Check{ID: model.CheckManualApproval}
	switch {
	case approval == nil:
		manual.Status, manual.Message = model.CheckWarn, "awaiting ops-lead approval"
	case otherFail:
		manual.Status = model.CheckFail
		manual.Message = fmt.Sprintf("approval by %s at %s voided: critical checks fail; approve again once they pass", approval.By, approval.At)
		res.VoidApproval = true
	default:
		manual.Status, manual.Message = model.CheckPass, fmt.Sprintf("approved by %s at %s", approval.By, approval.At)
	}
	res.Checks = append(res.Checks, manual)
	statuses := make([]model.CheckStatus, len(res.Checks))
	for i, c := range res.Checks {
		statuses[i] = c.Status
	}
	res.Gate = Decide(statuses)
	return res
}

func summarize(id model.CheckID, s Summary) Check {
	tl := s.Checks[id]
	c := Check{ID: id, Status: tl.worst()}
	if s.Mailboxes == 0 {
		return Check{ID: id, Status: model.CheckFail, Message: "no mailbox results"}
	}
	switch c.Status {
	case model.CheckPass:
		c.Message = fmt.Sprintf("%d/%d mailboxes pass", tl.Pass, s.Mailboxes)
	case model.CheckWarn:
		c.Message = fmt.Sprintf("%d/%d mailboxes warn: %s", tl.Warn, s.Mailboxes, examples(tl))
	case model.CheckFail:
		c.Message = fmt.Sprintf("%d/%d mailboxes fail: %s", tl.Fail, s.Mailboxes, examples(tl))
	}
	return c
}

func examples(tl Tally) string {
	s := strings.Join(tl.Examples, "; ")
	n := tl.Warn
	if tl.worst() == model.CheckFail {
		n = tl.Fail
	}
	if int64(len(tl.Examples)) < n {
		s += fmt.Sprintf("; and %d more", n-int64(len(tl.Examples)))
	}
	return s
}

// Decide is the go/no-go rule: any failing check blocks; otherwise any warning needs
// human review; only all checks passing (manual_approval included) allows DNS.
func Decide(statuses []model.CheckStatus) model.Gate {
	g := model.GateReadyForDNS
	for _, s := range statuses {
		switch s {
		case model.CheckFail:
			return model.GateBlocked
		case model.CheckWarn:
			g = model.GateWarning
		case model.CheckPass:
		default:
			return model.GateBlocked // unknown status: never let it open the gate
		}
	}
	if len(statuses) == 0 {
		return model.GateBlocked
	}
	return g
}

// Failing lists the checks that did not pass, for refusals ("count_ratio fail: ...").
func (r Result) Failing() []string {
	var out []string
	for _, c := range r.Checks {
		if c.Status != model.CheckPass {
			out = append(out, fmt.Sprintf("%s %s: %s", c.ID, c.Status, c.Message))
		}
	}
	return out
}
