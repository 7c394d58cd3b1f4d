// Package logging builds the process logger from CUTOVER_LOG_LEVEL (debug|info|warn|error) and
// CUTOVER_LOG_FORMAT (text|json).
package logging

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// FromEnv returns a structured logger writing to w.
func FromEnv(w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("CUTOVER_LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(os.Getenv("CUTOVER_LOG_FORMAT"), "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
