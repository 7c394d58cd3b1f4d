// Package tgz reads a tarball (gzip, bzip2 or plain tar) of a Maildir or of an eml tree as a
// source (run type tgz_import). The archive is unpacked once into the work directory under the
// archive safety limits (no links, no names leaving the directory, bounded sizes and counts);
// then the Maildir or eml reader lists it. Maildir dates come from the archived mtimes, flags
// from the info suffixes; eml dates from Received/Date headers.
package tgz

import (
	"fmt"
	"os"

	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/activities/mail/sources/eml"
	"github.com/cutover/cutover/activities/mail/sources/maildir"
	"github.com/cutover/cutover/activities/mail/sources/mbox"
)

// Layout says what a tarball held.
type Layout string

const (
	LayoutMaildir Layout = "maildir"
	LayoutEML     Layout = "eml"
	LayoutMbox    Layout = "mbox"
)

// Open unpacks the tarball at path under workRoot (reusing an earlier complete unpacking of the
// same file) and lists it.
func Open(path, workRoot string, lim sources.Limits) (*sources.Snapshot, Layout, error) {
	dir, _, err := sources.Prepared(workRoot, "tgz", path, func(dir string) error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("tgz %s: %w", path, err)
		}
		defer f.Close()
		_, err = sources.ExtractTar(f, path, dir, lim)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return Read(dir)
}

// Read lists an unpacked tarball: a Maildir if one is found, else an eml tree if it holds
// message files, else a tree of mbox files.
func Read(dir string) (*sources.Snapshot, Layout, error) {
	if root, ok := maildir.Find(dir); ok {
		snap, err := maildir.Read(root)
		if err != nil {
			return nil, "", err
		}
		if root != dir {
			snap.Warnings = append(snap.Warnings, fmt.Sprintf("Maildir found at %s; files outside it are not mail", root))
		}
		return snap, LayoutMaildir, nil
	}
	snap, err := eml.ReadTree(dir)
	if err != nil {
		return nil, "", err
	}
	if snap.Messages() > 0 || len(snap.Quarantined) > 0 {
		return snap, LayoutEML, nil
	}
	msnap, err := mbox.Open(dir, mbox.Auto)
	if err != nil {
		return nil, "", err
	}
	if msnap.Messages() > 0 || len(msnap.Quarantined) > 0 {
		return msnap, LayoutMbox, nil
	}
	// Nothing recognisable: an empty mailbox, with every file named in the warnings.
	return snap, LayoutEML, nil
}
