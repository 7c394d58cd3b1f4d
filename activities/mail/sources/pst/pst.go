// Package pst reads an Outlook PST file as a source (run types pst_extract then pst_upload,
// tool readpst). readpst (pst-utils) converts it, once, into a tree of .eml files in the work
// directory, one directory per PST folder with the folder names kept; the eml reader lists the
// tree. readpst runs with -e (one RFC 822 file per message, attachments inline as MIME parts)
// and -D (the Deleted Items folder is mail too), never with its attachment-dropping options
// (-a, -b).
//
// Items readpst cannot convert are counted in its per-folder summary ("N items skipped"); those
// that are mail (or of unknown kind) are quarantined so they show in the stats and flip the
// gate's pst_quarantine check, while distribution lists and other items that are not mail are
// only reported in the warnings. readpst's warning log is read from a pipe, never written to
// disk (it can be a third of the PST's size).
package pst

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cutover/cutover/activities/mail/sources"
	"github.com/cutover/cutover/activities/mail/sources/eml"
)

// Readpst is the readpst binary; tests and operators may point it elsewhere.
var Readpst = "readpst"

// Args are readpst's options: separate .eml files, Deleted Items included, no forking (so its
// progress lines come in depth-first order and tell the folder tree), warnings-only log to the
// inherited descriptor 3 (a pipe). Nothing here drops attachments.
func Args(outDir, pstPath string) []string {
	return []string{"-e", "-D", "-j", "0", "-L", "3", "-d", "/dev/fd/3", "-o", outDir, pstPath}
}

// Extraction is what one readpst run did (the pst_extract run's stats).
type Extraction struct {
	Folders     int           `json:"folders"`
	ItemsDone   int64         `json:"items_done"`
	Skipped     int64         `json:"skipped"`      // readpst's total of unconverted items
	NotMail     int64         `json:"not_mail"`     // of Skipped: distribution lists and the like
	Quarantined int64         `json:"quarantined"`  // of Skipped: mail readpst could not convert
	ExitCode    int           `json:"exit_code"`    // readpst's
	Duration    time.Duration `json:"duration_ns"`  //
	Root        string        `json:"root"`         // the PST's root folder name
	Skips       []FolderSkips `json:"folder_skips"` // per readpst folder summary
	// Tree is every folder of the PST below its root, empty ones included (readpst writes
	// directories only for folders with content), as paths named the way readpst names
	// directories.
	Tree        []string `json:"tree"`
	NotMailKind map[string]int64
}

// FolderSkips is one folder's "N items done, M items skipped" summary.
type FolderSkips struct {
	Name    string `json:"name"`
	Done    int64  `json:"done"`
	Skipped int64  `json:"skipped"`
}

const (
	outDirName  = "out"
	summaryFile = "extraction.json"
)

var (
	folderLine  = regexp.MustCompile(`^Processing Folder "(.*)"$`)
	summaryLine = regexp.MustCompile(`^\s*"(.*)" - (\d+) items done, (\d+) items skipped\.$`)
	unknownType = regexp.MustCompile(`Unknown item type -?\d+ \(([^)]*)\)`)
)

// mailClass reports whether an item class readpst did not know is still mail (then its loss
// is a quarantine, not a warning).
func mailClass(class string) bool {
	c := strings.ToUpper(class)
	for _, p := range []string{"IPM.NOTE", "IPM.POST", "IPM.SCHEDULE", "REPORT.", "IPM.OUTLOOK.RECALL"} {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return c == "" || c == "IPM" || c == "(NULL)"
}

// Open extracts the PST at path under workRoot (once per PST content; a retried activity
// reuses the result) and lists it. fresh reports whether readpst ran now; ext describes the
// extraction either way.
func Open(ctx context.Context, path, workRoot string) (snap *sources.Snapshot, ext Extraction, fresh bool, err error) {
	dir, fresh, err := sources.Prepared(workRoot, "pst", path, func(dir string) error {
		e, err := Extract(ctx, path, filepath.Join(dir, outDirName))
		if err != nil {
			return err
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, summaryFile), b, 0o600)
	})
	if err != nil {
		return nil, Extraction{}, false, err
	}
	b, err := os.ReadFile(filepath.Join(dir, summaryFile))
	if err != nil {
		return nil, Extraction{}, false, fmt.Errorf("pst %s extraction summary: %w", path, err)
	}
	if err := json.Unmarshal(b, &ext); err != nil {
		return nil, Extraction{}, false, fmt.Errorf("pst %s extraction summary: %w", path, err)
	}
	snap, err = List(filepath.Join(dir, outDirName), ext)
	if err != nil {
		return nil, Extraction{}, false, err
	}
	return snap, ext, fresh, nil
}

// Extract runs readpst on pstPath into outDir.
func Extract(ctx context.Context, pstPath, outDir string) (Extraction, error) {
	if _, err := os.Stat(pstPath); err != nil {
		return Extraction{}, fmt.Errorf("pst %s: %w", pstPath, err)
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return Extraction{}, fmt.Errorf("pst work dir %s: %w", outDir, err)
	}
	bin, err := exec.LookPath(Readpst)
	if err != nil {
		return Extraction{}, fmt.Errorf("pst %s: readpst (pst-utils) is not installed on this worker: %w", pstPath, err)
	}
	logR, logW, err := os.Pipe()
	if err != nil {
		return Extraction{}, fmt.Errorf("pst %s: %w", pstPath, err)
	}
	cmd := exec.CommandContext(ctx, bin, Args(outDir, pstPath)...)
	cmd.ExtraFiles = []*os.File{logW}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &limitedBuffer{b: &stderr, max: 64 << 10}
	cmd.WaitDelay = 10 * time.Second

	notMail := map[string]int64{}
	var mailUnknown int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(logR)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			m := unknownType.FindSubmatch(sc.Bytes())
			if m == nil {
				continue
			}
			if class := string(m[1]); mailClass(class) {
				mailUnknown++
			} else {
				notMail[class]++
			}
		}
		_, _ = io.Copy(io.Discard, logR)
	}()
	start := time.Now()
	runErr := cmd.Start()
	logW.Close() // the child holds its own copy
	if runErr == nil {
		runErr = cmd.Wait()
	}
	logR.Close()
	wg.Wait()

	ext := Extraction{Duration: time.Since(start), NotMailKind: notMail}
	for _, line := range strings.Split(stdout.String(), "\n") {
		m := summaryLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		done, _ := strconv.ParseInt(m[2], 10, 64)
		skipped, _ := strconv.ParseInt(m[3], 10, 64)
		ext.Skips = append(ext.Skips, FolderSkips{Name: m[1], Done: done, Skipped: skipped})
		ext.ItemsDone += done
		ext.Skipped += skipped
	}
	ext.Tree = folderTree(stdout.String())
	for _, n := range notMail {
		ext.NotMail += n
	}
	ext.NotMail = min(ext.NotMail, ext.Skipped)
	ext.Quarantined = ext.Skipped - ext.NotMail
	_ = mailUnknown // counted in Quarantined through Skipped - NotMail

	if runErr != nil {
		var ee *exec.ExitError
		if errors.As(runErr, &ee) {
			ext.ExitCode = ee.ExitCode()
		}
		if ctx.Err() != nil {
			return ext, fmt.Errorf("pst %s: readpst interrupted: %w", pstPath, ctx.Err())
		}
		msg := strings.TrimSpace(lastLines(stderr.String()+"\n"+stdout.String(), 3))
		return ext, sources.Malformed(pstPath, -1, runErr, "readpst cannot convert this file (exit %d): %s", ext.ExitCode, msg)
	}
	entries, err := os.ReadDir(outDir)
	if err != nil {
		return ext, fmt.Errorf("pst %s: %w", pstPath, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			ext.Root = e.Name()
			break
		}
	}
	return ext, nil
}

// folderTree rebuilds the folder hierarchy from readpst's sequential progress output. readpst
// prints `Processing Folder "X"` when it meets folder X and, only if X has children, descends
// and prints X's summary line when done: a depth-first walk where empty folders have no
// summary. Read backwards, a summary opens a folder and its "Processing" line closes it; any
// other "Processing" line is an empty child of the folder open at that point.
func folderTree(stdout string) []string {
	lines := strings.Split(stdout, "\n")
	type open struct{ name, path string }
	var stack []open
	var out []string
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimRight(lines[i], "\r")
		if m := summaryLine.FindStringSubmatch(line); m != nil {
			if len(stack) == 0 {
				stack = append(stack, open{m[1], ""}) // the root: the mailbox itself
				continue
			}
			p := joinPath(stack[len(stack)-1].path, dirName(m[1]))
			stack = append(stack, open{m[1], p})
			out = append(out, p)
			continue
		}
		m := folderLine.FindStringSubmatch(line)
		if m == nil || len(stack) == 0 {
			continue
		}
		if top := stack[len(stack)-1]; len(stack) > 1 && top.name == m[1] {
			stack = stack[:len(stack)-1] // the folder whose summary opened it
			continue
		}
		out = append(out, joinPath(stack[len(stack)-1].path, dirName(m[1])))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// dirName is readpst's check_filename: '/', '\' and ':' become '_'.
func dirName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' {
			return '_'
		}
		return r
	}, s)
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "/" + b
}

// List reads readpst's output tree: the PST's root folder ("Personal Folders", "Outlook Data
// File", ...) is the mailbox itself, its sub-directories the folders.
func List(outDir string, ext Extraction) (*sources.Snapshot, error) {
	root := outDir
	if ext.Root != "" {
		root = filepath.Join(outDir, ext.Root)
	}
	snap := &sources.Snapshot{} // a PST without a single item has no output directory
	if _, err := os.Stat(root); err == nil {
		if snap, err = eml.ReadTree(root); err != nil {
			return nil, err
		}
	}
	for _, p := range ext.Tree {
		snap.EnsureFolder(eml.FolderName(p))
	}
	snap.Sort()
	names := make([]string, 0, len(snap.Folders))
	for _, f := range snap.Folders {
		names = append(names, f.Name)
	}
	addSkips(snap, ext, names)
	return snap, nil
}

// addSkips turns readpst's unconverted mail items into quarantine entries, attributed to the
// folder whose last path element has the summary's name (readpst reports names, not paths).
func addSkips(snap *sources.Snapshot, ext Extraction, folders []string) {
	budget := ext.Quarantined
	for _, fs := range ext.Skips {
		if fs.Skipped == 0 || budget == 0 {
			continue
		}
		n := min(fs.Skipped, budget)
		budget -= n
		folder := ""
		for _, f := range folders {
			if f == fs.Name || strings.HasSuffix(f, "/"+fs.Name) || (strings.EqualFold(fs.Name, "Inbox") && f == "INBOX") {
				folder = f
				break
			}
		}
		for i := range n {
			snap.Quarantined = append(snap.Quarantined, sources.Quarantined{Folder: folder,
				Key:    fmt.Sprintf("readpst-skip:%s:%d", fs.Name, i+1),
				Reason: fmt.Sprintf("readpst could not convert an item of PST folder %q (%d of %d skipped there)", fs.Name, i+1, fs.Skipped)})
		}
	}
	kinds := make([]string, 0, len(ext.NotMailKind))
	for k := range ext.NotMailKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		snap.Warnings = append(snap.Warnings, fmt.Sprintf("PST: %d item(s) of class %s are not mail and were not imported", ext.NotMailKind[k], k))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
