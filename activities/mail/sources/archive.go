package sources

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Limits bound what an archive may unpack to, so a tar or zip bomb ends in a clear error
// instead of a full disk. Zero fields take the defaults.
type Limits struct {
	MaxEntries    int   // files and directories
	MaxEntryBytes int64 // one file
	MaxTotalBytes int64 // everything
}

// Defaults of Limits: generous for real mailboxes (IMAP servers refuse messages far below
// 1 GiB), fatal for bombs.
const (
	DefaultMaxEntries    = 5_000_000
	DefaultMaxEntryBytes = 1 << 30
	DefaultMaxTotalBytes = 256 << 30
)

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxEntryBytes <= 0 {
		l.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	return l
}

// SafeJoin maps an archive entry name onto dir, refusing absolute names and any ".." that
// would leave dir. It returns the cleaned relative name too ("" for the root itself).
func SafeJoin(dir, name string) (string, string, error) {
	n := strings.ReplaceAll(name, "\\", "/")
	if strings.ContainsRune(n, 0) {
		return "", "", errors.New("name contains a NUL byte")
	}
	if path.IsAbs(n) || (len(n) >= 2 && n[1] == ':') {
		return "", "", errors.New("absolute path")
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", "", errors.New("path escapes the extraction directory (..)")
		}
	}
	rel := path.Clean("/" + n)[1:]
	if rel == "" {
		return dir, "", nil
	}
	return filepath.Join(dir, filepath.FromSlash(rel)), rel, nil
}

// countingReader tracks the offset reached in a stream, for error messages.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Extracted is one regular file an archive unpacked.
type Extracted struct {
	Rel     string // slash-separated name inside the archive, cleaned
	Path    string // where it is on disk
	Size    int64
	ModTime time.Time
}

// ExtractTar unpacks a tar stream, plain or compressed with gzip or bzip2 (detected from the
// magic bytes), into dir. Only directories and regular files are accepted: links, devices and
// names leaving dir are errors naming the entry and its offset in the (uncompressed) stream.
// name is the archive's path, for messages.
func ExtractTar(r io.Reader, name, dir string, lim Limits) ([]Extracted, error) {
	lim = lim.withDefaults()
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(3)
	var stream io.Reader = br
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, Malformed(name, 0, err, "not a valid gzip stream")
		}
		defer gz.Close()
		stream = gz
	case len(magic) == 3 && string(magic) == "BZh":
		stream = bzip2.NewReader(br)
	}
	cr := &countingReader{r: stream}
	tr := tar.NewReader(cr)
	var out []Extracted
	var total int64
	entries := 0
	for {
		start := cr.n
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, Malformed(name, start, err, "corrupt tar stream (offset in the uncompressed stream)")
		}
		entries++
		if entries > lim.MaxEntries {
			return nil, &FormatError{File: name, Entry: h.Name, Offset: start, Msg: fmt.Sprintf("more than %d entries", lim.MaxEntries), Err: ErrLimit}
		}
		dst, rel, err := SafeJoin(dir, h.Name)
		if err != nil {
			return nil, &FormatError{File: name, Entry: h.Name, Offset: start, Msg: "unsafe entry name", Err: err}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return nil, fmt.Errorf("extract %s[%s]: %w", name, h.Name, err)
			}
			continue
		case tar.TypeReg, tar.TypeGNUSparse: // the reader reports the old TypeRegA as TypeReg
		case tar.TypeSymlink, tar.TypeLink:
			return nil, &FormatError{File: name, Entry: h.Name, Offset: start, Msg: fmt.Sprintf("links are not accepted in a mail archive (-> %q)", h.Linkname)}
		default:
			return nil, &FormatError{File: name, Entry: h.Name, Offset: start, Msg: fmt.Sprintf("entry type %q is not a file or directory", h.Typeflag)}
		}
		if rel == "" {
			return nil, &FormatError{File: name, Entry: h.Name, Offset: start, Msg: "regular file without a name"}
		}
		if h.Size > lim.MaxEntryBytes {
			return nil, &FormatError{File: name, Entry: h.Name, Offset: start, Msg: fmt.Sprintf("entry of %d bytes exceeds the %d-byte limit", h.Size, lim.MaxEntryBytes), Err: ErrLimit}
		}
		if total+h.Size > lim.MaxTotalBytes {
			return nil, &FormatError{File: name, Entry: h.Name, Offset: start, Msg: fmt.Sprintf("archive unpacks to more than %d bytes", lim.MaxTotalBytes), Err: ErrLimit}
		}
		n, err := writeFile(dst, io.LimitReader(tr, lim.MaxEntryBytes+1), h.ModTime)
		if err != nil {
			if IsFormatError(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) || errors.Is(err, gzip.ErrChecksum) {
				return nil, &FormatError{File: name, Entry: h.Name, Offset: start, Msg: "truncated or corrupt entry data", Err: err}
			}
			return nil, fmt.Errorf("extract %s[%s]: %w", name, h.Name, err)
		}
		if n > lim.MaxEntryBytes {
			return nil, &FormatError{File: name, Entry: h.Name, Offset: start, Msg: fmt.Sprintf("entry exceeds the %d-byte limit", lim.MaxEntryBytes), Err: ErrLimit}
		}
		total += n
		out = append(out, Extracted{Rel: rel, Path: dst, Size: n, ModTime: h.ModTime})
	}
	return out, nil
}

// ExtractZip unpacks a zip file into dir under the same rules as ExtractTar; offsets are those
// of the entries' local headers in the zip file.
func ExtractZip(zipPath, dir string, lim Limits) ([]Extracted, error) {
	lim = lim.withDefaults()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		if errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrAlgorithm) || errors.Is(err, zip.ErrChecksum) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, Malformed(zipPath, -1, err, "not a readable zip file")
		}
		return nil, fmt.Errorf("open zip %s: %w", zipPath, err)
	}
	defer zr.Close()
	if len(zr.File) > lim.MaxEntries {
		return nil, &FormatError{File: zipPath, Offset: -1, Msg: fmt.Sprintf("%d entries, more than %d", len(zr.File), lim.MaxEntries), Err: ErrLimit}
	}
	var out []Extracted
	var total int64
	for _, f := range zr.File {
		off, oerr := f.DataOffset()
		if oerr != nil {
			off = -1
		}
		dst, rel, err := SafeJoin(dir, f.Name)
		if err != nil {
			return nil, &FormatError{File: zipPath, Entry: f.Name, Offset: off, Msg: "unsafe entry name", Err: err}
		}
		mode := f.Mode()
		switch {
		case mode.IsDir() || strings.HasSuffix(f.Name, "/"):
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return nil, fmt.Errorf("extract %s[%s]: %w", zipPath, f.Name, err)
			}
			continue
		case mode&os.ModeSymlink != 0:
			return nil, &FormatError{File: zipPath, Entry: f.Name, Offset: off, Msg: "links are not accepted in a mail archive"}
		case !mode.IsRegular():
			return nil, &FormatError{File: zipPath, Entry: f.Name, Offset: off, Msg: fmt.Sprintf("entry mode %s is not a file or directory", mode)}
		}
		if rel == "" {
			return nil, &FormatError{File: zipPath, Entry: f.Name, Offset: off, Msg: "regular file without a name"}
		}
		// The declared size may lie; the copy below is bounded by the limit regardless.
		if f.UncompressedSize64 > uint64(lim.MaxEntryBytes) {
			return nil, &FormatError{File: zipPath, Entry: f.Name, Offset: off, Msg: fmt.Sprintf("entry of %d bytes exceeds the %d-byte limit", f.UncompressedSize64, lim.MaxEntryBytes), Err: ErrLimit}
		}
		rc, err := f.Open()
		if err != nil {
			return nil, &FormatError{File: zipPath, Entry: f.Name, Offset: off, Msg: "cannot open entry", Err: err}
		}
		n, err := writeFile(dst, io.LimitReader(rc, lim.MaxEntryBytes+1), f.Modified)
		rc.Close()
		if err != nil {
			if errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, zip.ErrAlgorithm) || strings.Contains(err.Error(), "flate") {
				return nil, &FormatError{File: zipPath, Entry: f.Name, Offset: off, Msg: "corrupt entry data", Err: err}
			}
			return nil, fmt.Errorf("extract %s[%s]: %w", zipPath, f.Name, err)
		}
		if n > lim.MaxEntryBytes {
			return nil, &FormatError{File: zipPath, Entry: f.Name, Offset: off, Msg: fmt.Sprintf("entry exceeds the %d-byte limit", lim.MaxEntryBytes), Err: ErrLimit}
		}
		total += n
		if total > lim.MaxTotalBytes {
			return nil, &FormatError{File: zipPath, Entry: f.Name, Offset: off, Msg: fmt.Sprintf("archive unpacks to more than %d bytes", lim.MaxTotalBytes), Err: ErrLimit}
		}
		out = append(out, Extracted{Rel: rel, Path: dst, Size: n, ModTime: f.Modified})
	}
	return out, nil
}

// writeFile creates dst (and its parents) exclusively-owned, copies r into it and sets mtime.
func writeFile(dst string, r io.Reader, mtime time.Time) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, err
	}
	// O_NOFOLLOW-like safety: a name extracted earlier can only be a regular file or directory,
	// never a link (links are refused), so replacing it cannot write outside dir.
	if fi, err := os.Lstat(dst); err == nil && !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s exists and is not a regular file", dst)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if !mtime.IsZero() {
		_ = os.Chtimes(dst, mtime, mtime)
	}
	return n, nil
}
