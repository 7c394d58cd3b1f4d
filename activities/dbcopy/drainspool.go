package dbcopy

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
)

// rowSpool keeps the changed rows of a large SQLite drain on disk, chunk by chunk, between the
// read transaction of the file that read them and the target transaction that writes them: the
// file is free again before PostgreSQL is written, whatever the backlog, and memory holds one
// chunk at a time. A SQLite row's values are int64, float64, string, []byte or nil, which gob
// carries in an []any as they are.
type rowSpool struct {
	f   *os.File
	w   *bufio.Writer
	enc *gob.Encoder
	dec *gob.Decoder
}

func newRowSpool() (*rowSpool, error) {
	f, err := os.CreateTemp("", "cutover-drain-*")
	if err != nil {
		return nil, fmt.Errorf("spool changed rows: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	return &rowSpool{f: f, w: w, enc: gob.NewEncoder(w)}, nil
}

// write appends a chunk of rows.
func (s *rowSpool) write(rows [][]any) error {
	if err := s.enc.Encode(rows); err != nil {
		return fmt.Errorf("spool changed rows: %w", err)
	}
	return nil
}

// rewind ends the writing and reads the chunks again from the first.
func (s *rowSpool) rewind() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool changed rows: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool changed rows: %w", err)
	}
	s.dec = gob.NewDecoder(bufio.NewReaderSize(s.f, 1<<20))
	return nil
}

// next returns the next chunk, or io.EOF after the last.
func (s *rowSpool) next() ([][]any, error) {
	var rows [][]any
	if err := s.dec.Decode(&rows); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read spooled rows: %w", err)
	}
	return rows, nil
}

// close removes the spool's file.
func (s *rowSpool) close() {
	s.f.Close()
	os.Remove(s.f.Name())
}
