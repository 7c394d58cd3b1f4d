package mail

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/cutover/cutover/activities/mail/imapx"
	"github.com/cutover/cutover/workflows/email/emailapi"
)

// Preflight logs in to both sides and reports the folders with their counts and sizes, where
// each lands, what the destination already holds, its quota and APPENDLIMIT, and warnings
// (messages above the limit, not enough quota, folders created under new names).
func (e *Engine) Preflight(ctx context.Context, spec emailapi.MailboxSpec, runID int64) (emailapi.PreflightReport, error) {
	filter, err := validateSpec(spec)
	if err != nil {
		return emailapi.PreflightReport{}, err
	}
	cr, err := e.resolve(ctx, spec)
	if err != nil {
		return emailapi.PreflightReport{}, err
	}
	s, err := e.dial(ctx, spec, cr)
	if err != nil {
		return emailapi.PreflightReport{}, err
	}
	defer s.close()
	pl, err := e.plan(ctx, s, spec, filter)
	if err != nil {
		return emailapi.PreflightReport{}, err
	}
	rep := emailapi.PreflightReport{RunID: runID, AppendLimit: s.dst.appendLimit(), NotPersonal: pl.outside,
		DestOnlyFolders: pl.destOnly}
	rep.Warnings = append(rep.Warnings, namespaceWarnings(pl)...)
	destStatus := pl.destStatus
	rep.DestHolds = destHolds(destStatus)
	if n, b := sumHolds(rep.DestHolds); n > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the destination already holds %d message(s) (%d bytes) in %d folder(s): "+
			"kept by copy and mirror passes; strict_mirror would delete those in synced folders that the source lacks",
			n, b, len(rep.DestHolds)))
	}
	if s.dst.c.Has(imap.CapQuota) {
		if roots, err := s.dst.c.GetQuotaRoot("INBOX").Wait(); err == nil {
			for _, r := range roots {
				if st, ok := r.Resources[imap.QuotaResourceStorage]; ok {
					// QUOTA STORAGE is in units of 1024 octets.
					rep.DestQuotaUsed, rep.DestQuotaLimit = st.Usage*1024, st.Limit*1024
					break
				}
			}
		}
	}
	limit := rep.AppendLimit
	if m := spec.MaxMessageSize; m > 0 && (limit == 0 || m < limit) {
		limit = m
	}
	var total int64
	for _, m := range pl.mappings {
		st := pl.status[m.Source.Name]
		fs := emailapi.FolderStats{Source: m.Source.Name, Dest: m.Dest, SpecialUse: m.SpecialUse, SourceMessages: st.Messages,
			SourceBytes: max(0, st.Bytes), DestMessages: destStatus[m.Dest].Messages, DestBytes: max(0, destStatus[m.Dest].Bytes)}
		rep.Folders = append(rep.Folders, fs)
		total += fs.SourceBytes
		if !m.Exists {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("folder %q will be created on the destination as %q (%s)", m.Source.Name, m.Dest, m.By))
		}
		if limit > 0 && st.Messages > 0 {
			if _, err := s.src.Open(ctx, m.Source.Name); err != nil {
				return rep, err
			}
			if s.srcC == nil { // a file source: sizes are in its listing
				if n, err := largerThan(ctx, s.src, limit); err != nil {
					return rep, err
				} else if n > 0 {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("folder %q: %d message(s) larger than the destination's limit of %d bytes will be quarantined", m.Source.Name, n, limit))
				}
				continue
			}
			big, err := s.srcC.UIDSearch(&imap.SearchCriteria{Larger: limit}, nil).Wait()
			if err != nil {
				return rep, imapx.Classify("search "+m.Source.Name, err, imapx.ClassFetch)
			}
			if uids, ok := big.All.(imap.UIDSet); ok {
				if nums, _ := uids.Nums(); len(nums) > 0 {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("folder %q: %d message(s) larger than the destination's limit of %d bytes will be quarantined", m.Source.Name, len(nums), limit))
				}
			}
		}
	}
	if rep.DestQuotaLimit > 0 && rep.DestQuotaUsed+total > rep.DestQuotaLimit {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("destination quota: %d bytes used of %d, the source holds %d more", rep.DestQuotaUsed, rep.DestQuotaLimit, total))
	}
	if !s.dst.c.Has(imap.CapUIDPlus) {
		rep.Warnings = append(rep.Warnings, "destination lacks UIDPLUS: flag changes and mirror deletes cannot be applied to copied messages")
	}
	rep.Warnings = append(rep.Warnings, sourceWarnings(s.src)...) // sourceopen.go: what a file source left out
	if s.srcC != nil && !s.srcC.Has(imap.CapCondStore) {
		rep.Warnings = append(rep.Warnings, "source lacks CONDSTORE: every delta pass re-reads all flags")
	}
	seen := map[string]string{}
	for _, m := range pl.mappings {
		if prev, ok := seen[strings.ToUpper(m.Dest)]; ok {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("folders %q and %q both land in %q", prev, m.Source.Name, m.Dest))
		}
		seen[strings.ToUpper(m.Dest)] = m.Source.Name
	}
	return rep, nil
}

// destHolds lists the destination folders that hold messages, by name.
func destHolds(status map[string]SourceFolder) []emailapi.DestFolder {
	var out []emailapi.DestFolder
	for name, f := range status {
		if f.Messages > 0 {
			out = append(out, emailapi.DestFolder{Name: name, Messages: f.Messages, Bytes: max(0, f.Bytes)})
		}
	}
	slices.SortFunc(out, func(a, b emailapi.DestFolder) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func sumHolds(hs []emailapi.DestFolder) (messages, bytes int64) {
	for _, h := range hs {
		messages += h.Messages
		bytes += h.Bytes
	}
	return messages, bytes
}
