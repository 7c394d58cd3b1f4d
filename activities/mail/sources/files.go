package sources

import (
	"io"
	"os"
)

// FileOpener opens a whole file.
func FileOpener(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(path) }
}

// SectionOpener opens n bytes of a file from off, optionally through a transform (mbox
// From_ unquoting).
func SectionOpener(path string, off, n int64, transform func(io.Reader) io.Reader) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		var r io.Reader = io.NewSectionReader(f, off, n)
		if transform != nil {
			r = transform(r)
		}
		return readCloser{r, f}, nil
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

// ReadHeaderFile reads the header of the message stored at path.
func ReadHeaderFile(path string) (Header, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	return ReadHeader(f)
}
