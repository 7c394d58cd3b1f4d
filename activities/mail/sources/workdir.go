package sources

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// EnvWorkDir names the directory under which sources unpack archives and run readpst. It must
// be on the worker host with room for the largest mailbox; default: the system temp dir.
const EnvWorkDir = "CUTOVER_WORK_DIR"

// WorkRoot returns the work directory root.
func WorkRoot() string {
	if d := os.Getenv(EnvWorkDir); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "cutover-work")
}

const completeMarker = ".cutover-complete"

// Prepared returns a directory under root holding what fill produced from src (an uploaded
// archive or PST), running fill only when no complete result exists for src's current content
// (path, size and modification time). fill writes into a fresh private directory that is
// renamed into place when it succeeds, so a retried activity reuses a finished extraction and
// never sees a half-written one. fresh reports whether fill ran.
func Prepared(root, kind, src string, fill func(dir string) error) (dir string, fresh bool, err error) {
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", false, fmt.Errorf("%s %s: %w", kind, src, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", false, fmt.Errorf("%s %s: %w", kind, src, err)
	}
	sum := sha256.Sum256([]byte(abs + "\x00" + strconv.FormatInt(fi.Size(), 10) + "\x00" + strconv.FormatInt(fi.ModTime().UnixNano(), 10)))
	final := filepath.Join(root, kind+"-"+hex.EncodeToString(sum[:12]))
	if _, err := os.Stat(filepath.Join(final, completeMarker)); err == nil {
		return final, false, nil
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", false, fmt.Errorf("work dir %s: %w", root, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := final + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", false, fmt.Errorf("work dir %s: %w", tmp, err)
	}
	if err := fill(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, err
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o600); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, fmt.Errorf("work dir %s: %w", tmp, err)
	}
	_ = os.RemoveAll(final) // an incomplete leftover of a crashed run
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, fmt.Errorf("work dir %s: %w", final, err)
	}
	return final, true, nil
}

// IsMarker reports whether a file name is one of the work directory's own bookkeeping files.
func IsMarker(name string) bool { return name == completeMarker }
