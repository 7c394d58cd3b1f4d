package sources

import (
	"errors"
	"fmt"
)

// ErrTypeBadSource is the temporal.ApplicationError type of a source that cannot be read as
// its type says (a truncated tarball, an mbox that does not start with a From_ line, a PST
// readpst cannot open): permanent, a human must replace the file.
const ErrTypeBadSource = "BadSource"

// FormatError is a malformed source: it names the file (and the entry inside an archive) and
// the byte offset where reading went wrong, so an operator can look at the spot.
type FormatError struct {
	File   string // path of the file on disk
	Entry  string // entry inside an archive, "" for a plain file
	Offset int64  // byte offset in File (or in Entry when set); -1 when unknown
	Msg    string
	Err    error // cause, may be nil
}

func (e *FormatError) Error() string {
	where := e.File
	if e.Entry != "" {
		where += "[" + e.Entry + "]"
	}
	if e.Offset >= 0 {
		where += fmt.Sprintf(" at offset %d", e.Offset)
	}
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", where, e.Msg, e.Err)
	}
	return where + ": " + e.Msg
}

func (e *FormatError) Unwrap() error { return e.Err }

// Malformed builds a FormatError.
func Malformed(file string, offset int64, err error, format string, args ...any) *FormatError {
	return &FormatError{File: file, Offset: offset, Msg: fmt.Sprintf(format, args...), Err: err}
}

// IsFormatError reports whether err is (or wraps) a FormatError.
func IsFormatError(err error) bool {
	var fe *FormatError
	return errors.As(err, &fe)
}

// ErrLimit means an archive exceeded a safety limit (size, entry count): a bomb or a mistake.
var ErrLimit = errors.New("safety limit exceeded")
